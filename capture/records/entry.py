"""The data-entry form: a skeleton compiled once per form version, filled per request.

Django's widget templates cost milliseconds per 40-field form (docs/decisions.md), so the
form's HTML is built here once, as a list of static strings and *slots* (a value, a
`checked`, an error, a hidden flag), kept with the compiled form, and filled by a loop that
only escapes values. Everything a request changes goes through a slot; everything else
is fixed by the definition.

Field names posted by the page:
    <item>                        a value (several for a checkbox item)
    <item>__mc                    a missing-data code chosen for the item (wins over the value)
    <group>-<row>-<item>          a field of a repeating group's row (rows in index order)
    __status, __version, __base, __reason, __conflicts, __keep__<key>   the form's own fields
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from html import escape

from django.core import signing
from django.utils.safestring import SafeString

from capture.definitions.expressions import to_text
from capture.studies.disclosure import WITHHELD, Disclosure

from .compiled import CompiledForm, compiled
from .logic import apply_logic
from .validation import DATE_HINTS

TEXT_LIKE = ("text", "integer", "decimal", "date", "datetime", "time", "file")
SIGNING_SALT = "capture.records.entry"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?$")


def _e(text) -> str:
    return escape(str(text), quote=True)


# ---------------------------------------------------------------------------- values


def display(value):
    """A stored value as the page shows it: text, or a list of codes for a checkbox."""
    if value is None:
        return ""
    if isinstance(value, list):
        return [to_text(v) for v in value]
    return to_text(value)


def display_item(c: CompiledForm, name: str, value):
    """`display` of one item's stored value, or of a repeating group's rows (a list of dicts)."""
    if name in c.repeating:
        return [{k: display(v) for k, v in row.items()} for row in value or [] if isinstance(row, dict)]
    return display(value)


def display_values(c: CompiledForm, data: dict) -> tuple[dict, dict]:
    """(top-level display values, group -> list of row display dicts)."""
    grouped = c.grouped
    values = {k: display(v) for k, v in data.items() if k not in c.repeating and k not in grouped}
    rows = {g: [{k: display(v) for k, v in row.items()} for row in data.get(g) or []] for g in c.repeating}
    return values, rows


def as_record_values(values: dict, rows: dict) -> dict:
    return {**values, **rows}


# ---------------------------------------------------------------------------- what a user may see


@dataclass(frozen=True)
class ItemKind:
    """What the disclosure policy needs to know of an item: its datatype and identifier flag."""

    datatype: str
    identifier: bool


def item_kinds(c: CompiledForm) -> dict[str, ItemKind]:
    """Every item of the form (repeating groups' items too) by name, kept with the compiled form."""
    found = c.extras.get("kinds")
    if found is None:
        found = c.extras["kinds"] = {
            i["name"]: ItemKind(c.rules[i["name"]].datatype, bool(c.elements[i["element"]].identifier))
            for i in c.items
        }
    return found


def disclosed(c: CompiledForm, disclosure: Disclosure, subject, name: str, value):
    """A display value (text, a checkbox's codes, or a repeating group's rows) as this user may
    see it on a page: a hidden identifier as the mask, a date shifted with the subject's dates.
    In the de-identified world a name the form does not know is withheld (nothing vouches that
    it is not an identifier)."""
    if disclosure.identified or value in (None, "", []):
        return value
    if name in c.repeating:
        return [{k: disclosed(c, disclosure, subject, k, v) for k, v in row.items()} for row in value or []]
    kind = item_kinds(c).get(name)
    if kind is None:
        return WITHHELD
    return disclosure.value(subject, datatype=kind.datatype, identifier=kind.identifier, value=value)


def form_values(c: CompiledForm, disclosure: Disclosure, subject, values: dict, rows: dict):
    """The entry form's display values as this user may see them: a hidden identifier's control
    left empty (the page marks it hidden), dates shifted; (values, rows) as `display_values`."""
    if disclosure.identified:
        return values, rows
    kinds = item_kinds(c)

    def one(name, value):
        kind = kinds.get(name)
        if kind is None or disclosure.hides(kind):
            return ""
        return disclosure.value(subject, datatype=kind.datatype, identifier=False, value=value)

    shown_values = {k: one(k, v) for k, v in values.items()}
    shown_rows = {g: [{k: one(k, v) for k, v in row.items()} for row in group] for g, group in rows.items()}
    return shown_values, shown_rows


def _formatted_dates(c: CompiledForm) -> dict[str, str]:
    """Date and date-time items typed day or month first, by name, with their format."""
    found = c.extras.get("formatted_dates")
    if found is None:
        found = c.extras["formatted_dates"] = {
            name: rule.date_format
            for name, rule in c.rules.items()
            if rule.datatype in ("date", "datetime") and rule.date_format in ("dmy", "mdy")
        }
    return found


def _in_format(text, date_format: str):
    """An ISO date (or date-time) as it is typed in `date_format`; anything else as it is."""
    if not isinstance(text, str) or not _ISO_DATE.match(text):
        return text
    try:
        dt.date.fromisoformat(text[:10])
    except ValueError:
        return text  # not a date (typed wrong): shown as typed, to be corrected
    year, month, day = text[:4], text[5:7], text[8:10]
    first = f"{day}-{month}" if date_format == "dmy" else f"{month}-{day}"
    return f"{first}-{year}{text[10:]}"


def dates_as_typed(c: CompiledForm, values: dict, rows: dict) -> tuple[dict, dict]:
    """Display values with each dmy / mdy date as its field takes it (stored ISO: REDCap's
    date_dmy shows 31-12-2024 for 2024-12-31); (values, rows) as `display_values`."""
    formats = _formatted_dates(c)
    if not formats:
        return values, rows
    shown_values = {k: _in_format(v, formats[k]) if k in formats else v for k, v in values.items()}
    shown_rows = {
        g: [{k: _in_format(v, formats[k]) if k in formats else v for k, v in row.items()} for row in group]
        for g, group in rows.items()
    }
    return shown_values, shown_rows


# ---------------------------------------------------------------------------- the skeleton


@dataclass
class Skeleton:
    parts: list  # str | tuple (slot)
    logic_json: SafeString
    row_templates: dict[str, str]  # group -> <template> HTML of an empty row
    field_keys: list[str] = field(default_factory=list)

    @property
    def row_html(self) -> SafeString:
        """Every repeating group's empty-row <template>, for the page (built here, escaped)."""
        return SafeString("".join(self.row_templates.values()))


class _Builder:
    def __init__(self, c: CompiledForm, missing: list[dict]):
        self.c = c
        self.missing = missing
        self.parts: list = []

    def s(self, text: str) -> None:
        if self.parts and isinstance(self.parts[-1], str):
            self.parts[-1] += text
        else:
            self.parts.append(text)

    def slot(self, *slot) -> None:
        self.parts.append(slot)

    # -- one control; `key` is the name as posted; in a row, `row` is True and names carry the index
    def name(self, item_name: str, group: str | None) -> None:
        if group:
            self.s(f"{group}-")
            self.slot("i")
            self.s(f"-{item_name}")
        else:
            self.s(item_name)

    def ident(self, item_name: str, group: str | None, suffix: str = "") -> None:
        self.s("i-")
        self.name(item_name, group)
        self.s(suffix)

    def choice_inputs(self, kind: str, n: str, group, choices: dict) -> None:
        """One labelled checkbox or radio input per permissible value; the first carries the id."""
        for i, (code, meaning) in enumerate(choices.items()):
            self.s(f'<label class="choice"><input type="{kind}" name="')
            self.name(n, group)
            self.s(f'" value="{_e(code)}"')
            if i == 0:
                self.s(' id="')
                self.ident(n, group)
                self.s('"')
            self.slot("on", n, code, " checked")
            self.slot("ro", n)
            self.s(f"> {_e(meaning)}</label>")

    def control(self, item: dict, group: str | None, *, compact: bool = False) -> None:
        """The input(s) of one item, chosen by its datatype, codes and widget; `compact` in a row."""
        rule = self.c.rules[item["name"]]
        element = self.c.elements[item["element"]]
        n = item["name"]
        widget = item.get("widget") or element.spec.get("widget")
        if item.get("calculation"):
            self.calculated(n, group, element)
            return
        if rule.codes and (rule.multiple or widget == "checkbox"):
            self.s('<span class="choices" role="group">')
            self.choice_inputs("checkbox", n, group, rule.codes)
            self.s("</span>")
            self.missing_control(n, group, reachable=True)
            return
        choices = rule.codes or ({"1": "Yes", "0": "No"} if rule.datatype == "boolean" else {})
        if choices:
            as_radio = widget in ("radio", "yesno") or (
                widget is None and (rule.datatype == "boolean" or len(choices) <= 4)
            )
            if as_radio and not (compact and len(choices) > 3):
                self.radios(n, group, choices)
            else:
                self.select(n, group, choices)
            self.missing_control(n, group, reachable=True)
            return
        if rule.datatype == "file":
            self.file(n, group)
        elif widget == "textarea" and not compact:
            self.textarea(n, group, rule)
        else:
            self.text(n, group, rule, element)
        self.missing_control(n, group, reachable=False)

    def calculated(self, n: str, group: str | None, element) -> None:
        self.s('<input type="text" class="calc" readonly tabindex="-1" id="')
        self.ident(n, group)
        self.s('" name="')
        self.name(n, group)
        self.s('" value="')
        self.slot("v", n)
        self.s('" aria-describedby="calc-note">')
        if element.unit:
            self.s(f'<span class="unit">{_e(element.unit)}</span>')

    def radios(self, n: str, group: str | None, choices: dict) -> None:
        self.s('<span class="choices" role="radiogroup">')
        self.choice_inputs("radio", n, group, choices)
        self.s(
            '<button type="button" class="link clear" tabindex="-1" title="Clear the choice">clear</button></span>'
        )

    def select(self, n: str, group: str | None, choices: dict) -> None:
        self.s('<select id="')
        self.ident(n, group)
        self.s('" name="')
        self.name(n, group)
        self.s('"')
        self.slot("ro", n)
        self.s('><option value=""></option>')
        for code, meaning in choices.items():
            self.s(f'<option value="{_e(code)}"')
            self.slot("on", n, code, " selected")
            self.s(f">{_e(meaning)}</option>")
        self.s("</select>")

    def file(self, n: str, group: str | None) -> None:
        """A file input, the current file (capture/files/entry.py: a link, a box to remove it), and
        its reference posted back when no file is chosen (the server checks it is the record's)."""
        self.s('<input type="file" id="')
        self.ident(n, group)
        self.s('" name="')
        self.name(n, group)
        self.s('"')
        self.slot("ro", n)
        self.s('><span class="current">')
        self.slot("file", n, group)
        self.s('</span><input type="hidden" name="')
        self.name(n, group)
        self.s('__current" value="')
        self.slot("v", n)
        self.s('">')

    def textarea(self, n: str, group: str | None, rule) -> None:
        self.s('<textarea rows="3" id="')
        self.ident(n, group)
        self.s('" name="')
        self.name(n, group)
        self.s('"')
        if rule.max_length:
            self.s(f' maxlength="{rule.max_length}"')
        self.slot("ro", n)
        self.s(">")
        self.slot("v", n)
        self.s("</textarea>")

    def text(self, n: str, group: str | None, rule, element) -> None:
        """A typed text input (numbers, dates, times, text), with a calendar for dates and a unit."""
        kind = rule.datatype
        hint = DATE_HINTS.get(rule.date_format, "YYYY-MM-DD")
        # A date typed day or month first says so to the page's script, which reads it as ISO.
        order = f' data-format="{rule.date_format}"' if rule.date_format != "ymd" else ""
        attrs = {
            "integer": ' inputmode="numeric" class="num"',
            "decimal": ' inputmode="decimal" class="num"',
            "date": f' class="date" placeholder="{hint}"{order} autocomplete="off"',
            "datetime": f' class="datetime" placeholder="{hint} HH:MM"{order} autocomplete="off"',
            "time": ' class="time" placeholder="HH:MM" autocomplete="off"',
        }.get(kind, "")
        if kind == "text" and rule.max_length:
            # The maxlength leaves room for a missing-data code typed in a short field.
            attrs += f' maxlength="{max(rule.max_length, 4)}"'
            if rule.max_length <= 10:
                attrs += ' class="short"'
        self.s('<input type="text" id="')
        self.ident(n, group)
        self.s('" name="')
        self.name(n, group)
        self.s(f'"{attrs} value="')
        self.slot("v", n)
        self.s('"')
        self.slot("ro", n)
        self.s(">")
        if kind in ("date", "datetime"):
            picker = "date" if kind == "date" else "datetime-local"
            self.s(
                f'<input type="{picker}" class="picker" tabindex="-1" aria-hidden="true">'
                '<button type="button" class="pick" tabindex="-1" title="Pick from a calendar" aria-label="Pick from a calendar"><svg aria-hidden="true" width="16" height="16" viewBox="0 0 16 16"><rect x="1.5" y="2.5" width="13" height="12" rx="1.5" fill="none" stroke="currentColor"/><path d="M1.5 6h13M5 1v3M11 1v3" stroke="currentColor"/></svg></button>'
            )
        if element.unit:
            self.s(f'<span class="unit">{_e(element.unit)}</span>')

    def missing_control(self, n: str, group: str | None, *, reachable: bool) -> None:
        # Typed fields take a code typed in, so their code menu stays out of the tab order;
        # choice fields cannot, so theirs is reachable by keyboard.
        if not self.missing:
            return
        self.s('<select class="mc" name="')
        self.name(n, group)
        self.s('__mc" title="Missing-data code" aria-label="Missing-data code"')
        if not reachable:
            self.s(' tabindex="-1"')
        self.slot("ro", n)
        self.s('><option value="">—</option>')
        for code in self.missing:
            self.s(f'<option value="{_e(code["code"])}" title="{_e(code.get("meaning", ""))}"')
            self.slot("mc", n, code["code"])
            self.s(f">{_e(code['code'])}</option>")
        self.s("</select>")

    def label(self, item: dict, *, tag: str = "label", group: str | None = None) -> None:
        rule = self.c.rules[item["name"]]
        element = self.c.elements[item["element"]]
        hover = f"{element.long_name} — {element.public_id} v{element.version}"
        self.s(f'<{tag} class="q" title="{_e(hover)}"')
        if tag == "label":
            self.s(' for="')
            self.ident(item["name"], group)
            self.s('"')
        self.s(f">{_e(rule.label)}")
        if rule.required:
            self.s('<abbr class="req" title="required to mark the form Complete">*</abbr>')
        if item.get("calculation"):
            self.s(' <span class="tag">calculated</span>')
        self.s(f'<span class="ref">{_e(element.public_id)} v{_e(element.version)}</span></{tag}>')

    def field_block(self, item: dict) -> None:
        n = item["name"]
        self.s(f'<div class="field" id="f-{_e(n)}" data-name="{_e(n)}"')
        self.slot("hide", n)
        self.s(">")
        self.label(item)
        self.s('<div class="control">')
        self.control(item, None)
        self.slot("links", n)
        self.s("</div>")
        if item.get("field_note"):
            self.s(f'<small class="note">{_e(item["field_note"])}</small>')
        self.slot("conf", n)
        self.slot("err", n)
        self.s("</div>")

    def matrix(self, entry: dict) -> None:
        items = entry["items"]
        codes = self.c.rules[items[0]["name"]].codes
        title = entry.get("label") or entry["group"].replace("_", " ").capitalize()
        self.s(f'<table class="matrix"><caption>{_e(title)}</caption><thead><tr><th></th>')
        for meaning in codes.values():
            self.s(f'<th scope="col">{_e(meaning)}</th>')
        self.s('<th scope="col" class="muted">Missing</th><th></th></tr></thead><tbody>')
        for item in items:
            n = item["name"]
            self.s(f'<tr class="mrow" id="f-{_e(n)}" data-name="{_e(n)}"')
            self.slot("hide", n)
            self.s('><th scope="row">')
            self.label(item, tag="span")
            self.s("</th>")
            for i, code in enumerate(codes):
                self.s(
                    f'<td><input type="radio" name="{_e(n)}" value="{_e(code)}" aria-label="{_e(codes[code])}"'
                )
                if i == 0:
                    self.s(f' id="i-{_e(n)}"')
                self.slot("on", n, code, " checked")
                self.slot("ro", n)
                self.s("></td>")
            self.s("<td>")
            self.missing_control(n, None, reachable=True)
            self.s("</td><td>")
            self.slot("links", n)
            self.slot("conf", n)
            self.slot("err", n)
            self.s("</td></tr>")
        self.s("</tbody></table>")

    def repeating(self, entry: dict) -> list:
        """The group's table; returns the parts of one row (filled once per row)."""
        g = entry["group"]
        title = entry.get("label") or g.replace("_", " ").capitalize()
        limit = entry.get("max_repeats") or ""
        self.s(
            f'<fieldset class="repeat" id="g-{_e(g)}" data-group="{_e(g)}" data-max="{limit}">'
            f"<legend>{_e(title)}</legend>"
        )
        self.slot("err", g)
        self.slot("conf", g)
        self.s('<table class="rows"><thead><tr><th class="num">#</th>')
        for item in entry["items"]:
            self.s("<th>")
            self.label(item, tag="span", group=g)
            self.s("</th>")
        self.s("<th></th></tr></thead><tbody>")
        outer = self.parts
        self.parts = []
        self.s('<tr data-row="')
        self.slot("i")
        self.s('"><td class="num">')
        self.slot("i1")
        self.s("</td>")
        for item in entry["items"]:
            n = item["name"]
            self.s(f'<td data-name="{_e(n)}"')
            self.slot("hide", n)
            self.s(">")
            self.control(item, g, compact=True)
            self.slot("err", n)
            self.s("</td>")
        self.s(
            '<td><button type="button" class="link remove-row" title="Remove this row">Remove</button></td></tr>'
        )
        row_parts = self.parts
        self.parts = outer
        self.slot("rows", g, row_parts)
        self.s(
            f'</tbody></table><button type="button" class="add-row" data-group="{_e(g)}">'
            f"+ Add a row</button>"
            + (f' <small class="muted">at most {limit}</small>' if limit else "")
            + "</fieldset>"
        )
        return row_parts


def build_skeleton(c: CompiledForm, form_spec: dict, missing: list[dict]) -> Skeleton:
    b = _Builder(c, missing)
    row_templates = {}
    for index, section in enumerate(form_spec["sections"]):
        b.s(f'<section class="card ecrf-section" id="s-{index + 1}"><h2>{_e(section["title"])}</h2>')
        if section.get("description"):
            b.s(f'<p class="muted">{_e(section["description"])}</p>')
        for entry in section["items"]:
            if "group" not in entry:
                b.field_block({**entry})
            elif entry.get("repeating"):
                row = b.repeating(entry)
                empty = _Fill({}, {}, set(), set(), {}, {}, {}, set(), row_index="__i__")
                row_templates[entry["group"]] = (
                    f'<template id="tpl-{_e(entry["group"])}">{empty.render(row, {})}</template>'
                )
            elif entry.get("matrix"):
                b.matrix(entry)
            else:
                title = entry.get("label") or entry["group"].replace("_", " ").capitalize()
                b.s(f'<fieldset class="group"><legend>{_e(title)}</legend>')
                for item in entry["items"]:
                    b.field_block(item)
                b.s("</fieldset>")
        b.s("</section>")
    logic = {
        "items": [
            {
                "n": lg.name,
                "g": lg.group,
                "b": lg.branching,
                "c": lg.calculation,
                "dt": c.rules[lg.name].datatype,
                "dp": 0 if c.rules[lg.name].datatype == "integer" else c.rules[lg.name].decimal_places,
            }
            for lg in c.logic
        ],
        "groups": {g: [i["name"] for i in spec["items"]] for g, spec in c.repeating.items()},
        "fields": [i["name"] for i in c.items if not i["repeating"]],
        "missing": [m["code"] for m in missing],
    }
    return Skeleton(b.parts, json_script(logic), row_templates)


def json_script(data) -> SafeString:
    """JSON for the inside of a <script type="application/json"> element: as Django's json_script,
    nothing in it can close the element (<, > and & are escaped), so the page may show it as is."""
    text = json.dumps(data, separators=(",", ":"))
    return SafeString(text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026"))


def skeleton(c: CompiledForm, form_spec: dict, missing: list[dict]) -> Skeleton:
    key = ("skeleton", json.dumps(missing, sort_keys=True))
    found = c.extras.get(key)
    if found is None:
        found = c.extras[key] = build_skeleton(c, form_spec, missing)
    return found


# ---------------------------------------------------------------------------- filling


class _Fill:
    def __init__(
        self,
        values: dict,
        rows: dict,
        hidden: set,
        masked: set,
        errors: dict,
        links: dict,
        conflicts: dict,
        missing: set,
        row_index=None,
        file_html=None,
    ):
        self.values = values
        self.rows = rows
        self.hidden = hidden
        self.masked = masked
        self.errors = errors
        self.links = links
        self.conflicts = conflicts
        self.missing = missing
        self.row_index = row_index
        self.file_html = file_html or (lambda value, key: escape(str(value or ""), quote=True))

    def render(self, parts: list, values: dict, prefix: str = "") -> str:
        out: list[str] = []
        add = out.append
        missing = self.missing
        for part in parts:
            if part.__class__ is str:
                add(part)
                continue
            kind = part[0]
            if kind == "v":
                value = values.get(part[1], "")
                if value.__class__ is str and value and part[1] not in self.masked:
                    add(escape(value, quote=True))
            elif kind == "on":
                value = values.get(part[1])
                if value is not None and (value == part[2] or (value.__class__ is list and part[2] in value)):
                    add(part[3])
            elif kind == "mc":
                if values.get(part[1]) == part[2] and part[2] in missing:
                    add(" selected")
            elif kind == "ro":
                if part[1] in self.masked:
                    add(' disabled title="Identifier: hidden for your role"')
            elif kind == "hide":
                if prefix + part[1] in self.hidden:
                    add(" hidden" if not prefix else ' class="is-hidden"')
            elif kind == "file":
                key = part[1] if part[2] is None else f"{part[2]}-{self.row_index}-{part[1]}"
                add(self.file_html(values.get(part[1], ""), key))
            else:
                add(self.other(part, prefix))
        return "".join(out)

    def other(self, part: tuple, prefix: str) -> str:
        """The slots that come once a field or a group (errors, links, conflicts, rows), kept out of
        `render`'s loop over every value."""
        kind = part[0]
        if kind == "err":
            error = self.errors.get(prefix + part[1])
            return f'<span class="error" role="alert">{escape(error)}</span>' if error else ""
        if kind == "links":
            return self.links.get(part[1], "")
        if kind == "conf":
            return self.conflicts.get(part[1]) or ""
        if kind == "i":
            return str(self.row_index)
        if kind == "i1":
            return str(self.row_index + 1) if isinstance(self.row_index, int) else ""
        group, row_parts = part[1], part[2]  # "rows"
        out = []
        for index, row in enumerate(self.rows.get(group, [])):
            self.row_index = index
            out.append(self.render(row_parts, row, prefix=f"{group}[{index + 1}]."))
        self.row_index = None
        return "".join(out)


def render_form(
    c: CompiledForm,
    form_spec: dict,
    *,
    missing: list[dict],
    values: dict,
    rows: dict,
    hidden: set[str],
    errors: dict[str, str],
    masked: set[str] | frozenset[str] = frozenset(),
    links: dict[str, str] | None = None,
    conflicts: dict[str, str] | None = None,
    file_html=None,
) -> tuple[SafeString, Skeleton]:
    """The form's HTML for these display values (see `display_values`), safe to show as is: every
    value is escaped as it is filled in. `links` and `conflicts` (by field) are HTML already."""
    sk = skeleton(c, form_spec, missing)
    fill = _Fill(
        values,
        rows,
        hidden,
        set(masked),
        errors,
        links or {},
        conflicts or {},
        {m["code"] for m in missing},
        file_html=file_html,
    )
    return SafeString(fill.render(sk.parts, values)), sk


def visible_state(c: CompiledForm, values: dict, rows: dict, *, events, missing: frozenset[str]):
    """Fields hidden by branching, and calculated values, for display values (as the browser would)."""
    record = json.loads(json.dumps(as_record_values(values, rows)))

    def keep_text(rule, text, target, where):
        target[rule.name] = text

    hidden = apply_logic(c, record, clean_one=keep_text, events=events, missing_codes=missing)
    return hidden, record


# ---------------------------------------------------------------------------- reading a POST


def read_post(c: CompiledForm, post, files, *, store_file=None) -> tuple[dict, dict]:
    """The submitted values as (top-level values, group -> rows), all as text (or lists)."""
    grouped = c.grouped
    values = {}
    for name, rule in c.rules.items():
        if name in grouped:
            continue
        values[name] = _read_one(rule, name, post, files, store_file)
    rows: dict[str, list] = {}
    for g, spec in c.repeating.items():
        prefix = f"{g}-"
        indices = sorted(
            {
                int(key[len(prefix) :].split("-", 1)[0])
                for key in post
                if key.startswith(prefix) and key[len(prefix) :].split("-", 1)[0].isdigit()
            }
        )
        rows[g] = [
            {
                item["name"]: _read_one(
                    c.rules[item["name"]], f"{g}-{i}-{item['name']}", post, files, store_file
                )
                for item in spec["items"]
            }
            for i in indices
        ]
    return values, rows


def _read_one(rule, key: str, post, files, store_file):
    code = post.get(f"{key}__mc", "")
    if code:
        return code
    if rule.multiple:
        return post.getlist(key)
    if rule.datatype == "file":
        upload = files.get(key)
        if upload is not None and store_file is not None:
            return store_file(upload, key)
        return "" if post.get(f"{key}__remove") else post.get(f"{key}__current", "")
    return post.get(key, "").strip()


def submitted_record(values: dict, rows: dict) -> dict:
    """The POST as `save_record` values: blank rows dropped, checkbox lists kept."""
    record = dict(values)
    for g, group_rows in rows.items():
        record[g] = [row for row in group_rows if any(v not in ("", []) for v in row.values())]
    return record


# ---------------------------------------------------------------------------- conflicts


def sign(data) -> str:
    return signing.dumps(data, salt=SIGNING_SALT, compress=True)


def unsign(token: str):
    try:
        return signing.loads(token, salt=SIGNING_SALT)
    except signing.BadSignature:
        return None


def normalised(c: CompiledForm, name: str, raw, missing: frozenset[str]):
    """A typed value as it would be stored, shown as text, so '70.0' and '70' compare equal."""
    from .validation import _clean_scalar

    if raw in ("", [], None) or (isinstance(raw, str) and raw in missing):
        return display(raw)
    try:
        return display(_clean_scalar(c.rules[name], raw))
    except (ValueError, KeyError):
        return display(raw)


def merge(c: CompiledForm, base: dict, mine: tuple[dict, dict], theirs: dict, missing: frozenset[str]):
    """Three-way merge of one form's values, in display form.

    A field only the other user changed takes their value; one only this user changed keeps
    theirs... of this user; one both changed differently is a conflict: returns
    (merged values, merged rows, {key: (mine, theirs)}). Nothing is dropped silently."""
    base_values, base_rows = display_values(c, base)
    their_values, their_rows = display_values(c, theirs)
    my_values, my_rows = mine
    merged_values, merged_rows, conflicts = {}, {}, {}
    calculated = {lg.name for lg in c.logic if lg.calculation is not None}
    for name, raw in my_values.items():
        m = normalised(c, name, raw, missing)
        b, t = base_values.get(name, ""), their_values.get(name, "")
        if name in calculated or m == b:
            merged_values[name] = t
        elif t in (b, m):
            merged_values[name] = raw
        else:
            merged_values[name] = raw
            conflicts[name] = (m, t)
    for g, rows in my_rows.items():
        m_rows = [
            {k: normalised(c, k, v, missing) for k, v in row.items() if v not in ("", [])}
            for row in rows
            if any(v not in ("", []) for v in row.values())
        ]
        b, t = base_rows.get(g, []), their_rows.get(g, [])
        if m_rows == b:
            merged_rows[g] = t
        elif t in (b, m_rows):
            merged_rows[g] = rows
        else:
            merged_rows[g] = rows
            conflicts[g] = (m_rows, t)
    return merged_values, merged_rows, conflicts


def shown(c: CompiledForm, name: str, value) -> str:
    """A display value in words, for the conflict panel and the field history."""
    if value in ("", [], None):
        return "(blank)"
    if name in c.repeating:
        # In the form's item order: a row read back from PostgreSQL's jsonb has its keys re-sorted.
        order = [item["name"] for item in c.repeating[name]["items"]]
        lines = []
        for row in value:
            lines.append(
                "; ".join(
                    f"{c.rules[k].label}: {shown(c, k, row[k])}" for k in order if k in row and k in c.rules
                )
            )
        return " | ".join(lines) or "(no rows)"
    rule = c.rules.get(name)
    choices = (rule.codes or ({"1": "Yes", "0": "No"} if rule.datatype == "boolean" else {})) if rule else {}
    if isinstance(value, list):
        return ", ".join(str(choices.get(v, v)) for v in value)
    return choices.get(str(value), str(value))


__all__ = [
    "Skeleton",
    "compiled",
    "display_values",
    "merge",
    "read_post",
    "render_form",
    "sign",
    "submitted_record",
    "unsign",
    "visible_state",
]
