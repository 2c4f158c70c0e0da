"""A printable PDF of forms: blank (a paper source document), or filled with one subject's records
or many subjects' — the entry page's "PDF" button and the REDCap API's `content=pdf`.

Each form shows what the entry page shows: the sections, each item's label (required ones
marked), its note, every choice with the chosen one marked, a calculated field's formula, and a
branching note ("Shown if …") where an item is conditional. Values are those the user may see
(capture/studies/disclosure.py): a hidden identifier is masked, dates are shifted, a file field
gives the file's name only in the identified world.

ReportLab draws it (docs/decisions.md says why): pure Python, nothing to install beside it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate

from capture.definitions.models import EventForm, FormDefinition
from capture.studies.disclosure import Disclosure

from .compiled import CompiledForm, compiled
from .models import FormRecord

BLANK_LINE = "_" * 40
CHECKED, UNCHECKED = "[X]", "[  ]"


@dataclass
class Sheet:
    """One form to print: blank when `values` is None, else the record's values as shown."""

    form: FormDefinition
    heading: str
    values: dict | None = None
    missing: dict[str, str] | None = None  # missing-data code -> meaning


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "heading": base["Heading4"],
        "section": base["Heading3"],
        "label": ParagraphStyle("label", parent=base["BodyText"], fontName="Helvetica-Bold", spaceAfter=1),
        "body": ParagraphStyle("body", parent=base["BodyText"], leftIndent=6 * mm, spaceAfter=1),
        "note": ParagraphStyle(
            "note", parent=base["BodyText"], leftIndent=6 * mm, fontSize=8, textColor=colors.grey
        ),
    }


def _e(text) -> str:
    return escape("" if text is None else str(text))


# ---------------------------------------------------------------------------- which forms


def study_forms(study, form_names: list[str], *, event_name: str = "") -> list[tuple[FormDefinition, str]]:
    """(form version, event title) of each named form the study's schedule collects (at `event_name`
    only, when given), in schedule order, each form version once."""
    slots = (
        EventForm.objects.filter(event__arm__schedule=study.schedule, form__name__in=form_names)
        .select_related("form", "event")
        .order_by("event__arm__order", "event__order", "order")
    )
    if event_name:
        slots = slots.filter(event__name=event_name)
    seen: dict[int, tuple[FormDefinition, str]] = {}
    for slot in slots:
        seen.setdefault(slot.form_id, (slot.form, slot.event.title if event_name else ""))
    return list(seen.values())


def blank_pdf(study, form_names: list[str], *, event_name: str = "") -> bytes:
    """The named forms, blank, for paper source documents."""
    sheets = [
        Sheet(form, f"{study.name} · {event}" if event else study.name)
        for form, event in study_forms(study, form_names, event_name=event_name)
    ]
    return render(study, sheets, blank_header=True)


def records_pdf(user, study, subjects, *, forms: list[str], event_name: str = "") -> bytes:
    """Every record of `subjects` on the named forms (at `event_name`, when given), as `user` may
    see them. The caller has checked that `user` sees these subjects."""
    found = FormRecord.objects.filter(subject__in=subjects, form_name__in=forms).select_related(
        "form", "event", "subject"
    )
    if event_name:
        found = found.filter(event__name=event_name)
    found = found.order_by(
        "subject__subject_id", "event__arm__order", "event__order", "form_name", "instance"
    )
    policy = Disclosure.for_user(user, study)
    missing = {c["code"]: c["meaning"] for c in study.missing_codes}
    sheets = []
    for record in found:
        heading = f"{record.subject.subject_id} · {record.event.title}"
        if record.instance > 1:
            heading += f" · instance {record.instance}"
        heading += f" · {record.get_status_display()}"
        values = shown_values(compiled(record.form), policy, record.subject, record.data)
        sheets.append(Sheet(record.form, heading, values, missing))
    return render(study, sheets)


def shown_values(c: CompiledForm, policy: Disclosure, subject, data: dict) -> dict:
    """A record's values as this user may see them: masked identifiers, shifted dates, a file's
    name (identified world) or "[document]"."""
    from capture.files.services import names, references

    files = {f"file:{k.hex}": n for k, n in names(references(data)).items()} if policy.identified else {}

    def one(name, value):
        rule, item = c.rules.get(name), _item(c, name)
        if rule is None or item is None:
            return None
        identifier = bool(c.elements[item["element"]].identifier)
        if rule.datatype == "file" and policy.identified:
            return files.get(value, value)
        return policy.value(subject, datatype=rule.datatype, identifier=identifier, value=value)

    out: dict = {}
    for key, value in data.items():
        if key in c.repeating:
            out[key] = [
                {k: one(k, v) for k, v in row.items()} for row in value or [] if isinstance(row, dict)
            ]
        else:
            out[key] = one(key, value)
    return out


def _item(c: CompiledForm, name: str) -> dict | None:
    items = c.extras.get("pdf_items")
    if items is None:
        items = c.extras["pdf_items"] = {i["name"]: i for i in c.items}
    return items.get(name)


# ---------------------------------------------------------------------------- drawing


def render(study, sheets: list[Sheet], *, blank_header: bool = False) -> bytes:
    """The sheets as one PDF, each form from a new page."""
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, title=study.name, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm
    )
    styles = _styles()
    story: list = []
    for index, sheet in enumerate(sheets):
        if index:
            story.append(PageBreak())
        story.extend(_sheet(sheet, styles, blank_header))
    if not story:
        story.append(Paragraph("No records to print.", styles["body"]))

    def footer(canvas, document):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(18 * mm, 10 * mm, f"{study.name} · page {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def _sheet(sheet: Sheet, styles, blank_header: bool) -> list:
    form, c = sheet.form, compiled(sheet.form)
    story: list = [
        Paragraph(_e(form.title), styles["title"]),
        Paragraph(_e(f"{sheet.heading} · form {form.name} version {form.version}"), styles["heading"]),
    ]
    if blank_header:
        story.append(
            Paragraph(_e(f"Subject ID: {'_' * 20}   Date: {'_' * 14}   Initials: {'_' * 6}"), styles["body"])
        )
    for section in form.spec.get("sections", []):
        story.append(Paragraph(_e(section.get("title", "")), styles["section"]))
        for entry in section.get("items", []):
            if "group" in entry:
                story.extend(_group(c, sheet, entry, styles))
            else:
                story.append(
                    KeepTogether(
                        _item_flowables(c, sheet, entry["name"], _value(sheet, entry["name"]), styles)
                    )
                )
    return story


def _value(sheet: Sheet, name: str):
    return None if sheet.values is None else sheet.values.get(name)


def _group(c: CompiledForm, sheet: Sheet, entry: dict, styles) -> list:
    name = entry["group"]
    story: list = []
    if not entry.get("repeating"):
        for item in entry["items"]:
            story.append(
                KeepTogether(_item_flowables(c, sheet, item["name"], _value(sheet, item["name"]), styles))
            )
        return story
    rows = (sheet.values or {}).get(name) or []
    count = len(rows) if sheet.values is not None else 1
    note = "repeat as needed" if sheet.values is None else f"{count} row(s)"
    story.append(Paragraph(_e(f"{entry.get('title') or name} ({note})"), styles["label"]))
    for index in range(count):
        row = rows[index] if index < len(rows) else {}
        story.append(Paragraph(_e(f"Row {index + 1}"), styles["note"]))
        for item in entry["items"]:
            value = row.get(item["name"]) if sheet.values is not None else None
            story.append(KeepTogether(_item_flowables(c, sheet, item["name"], value, styles)))
    return story


def _item_flowables(c: CompiledForm, sheet: Sheet, name: str, value, styles) -> list:
    rule, item = c.rules[name], _item(c, name) or {}
    element = c.elements[item["element"]]
    widget = item.get("widget") or (element.spec or {}).get("widget")
    label = _e(rule.label) + (' <font color="red">*</font>' if rule.required else "")
    out = [Paragraph(label, styles["label"])]
    if item.get("field_note"):
        out.append(Paragraph(_e(item["field_note"]), styles["note"]))
    if item.get("branching"):
        out.append(Paragraph(_e(f"Shown if {item['branching']}"), styles["note"]))
    if widget == "descriptive":
        return out
    if item.get("calculation"):
        out.append(Paragraph(_e(f"Calculated: {item['calculation']}"), styles["note"]))
    out.extend(_answer(rule, value, sheet, styles))
    if element.unit:
        out.append(Paragraph(_e(f"Unit: {element.unit}"), styles["note"]))
    return out


def _answer(rule, value, sheet: Sheet, styles) -> list:
    missing = sheet.missing or {}
    if isinstance(value, str) and value in missing:
        return [Paragraph(_e(f"{value} ({missing[value]})"), styles["body"])]
    choices = rule.codes or ({"1": "Yes", "0": "No"} if rule.datatype == "boolean" else {})
    if not choices:
        shown = BLANK_LINE if value in (None, "") else value
        if rule.datatype == "file" and value in (None, ""):
            shown = "(file attached separately) " + BLANK_LINE
        return [Paragraph(_e(shown), styles["body"])]
    chosen = set(value) if isinstance(value, list) else {str(value)} if value not in (None, "") else set()
    lines = [f"{CHECKED if code in chosen else UNCHECKED} {meaning}" for code, meaning in choices.items()]
    if isinstance(value, str) and value and value not in choices:
        lines.append(value)  # a masked identifier: the mask, never a guess among the choices
    return [Paragraph("<br/>".join(_e(line) for line in lines), styles["body"])]
