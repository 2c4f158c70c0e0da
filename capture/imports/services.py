"""Spreadsheet import workflows: upload, suggest a mapping, dry run, commit, annotated report.

The shape follows pretix's import: the mapping resolves into column objects (mapping.ItemColumn),
every row is cleaned and validated first (`build_plan`, which writes nothing), and only a plan with
no problem is written, in one transaction, through `capture.records.bulk.write_records`, with one
`import.commit` audit event beside each record's own event. Re-importing the same file changes
nothing: records are matched by subject × event × form × instance and unchanged ones are skipped.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404

from capture.audit.services import record_event
from capture.definitions.models import DataElement, EventForm, FormDefinition
from capture.records.bulk import BLANK, FormValidator, RecordWrite, locked_subject_ids, write_records
from capture.records.models import FormRecord, Status
from capture.records.services import SubjectEvents, is_unchanged, merge_values
from capture.studies import access
from capture.studies.models import Site, Study

from . import readers
from .mapping import (
    CellError,
    ColumnSpec,
    ItemColumn,
    Mapping,
    is_redcap_export,
    number_text,
    redcap_event_name,
    redcap_mapping,
    suggest_columns,
    unit_factor,
)
from .models import ImportMapping, ImportUpload

PERMISSION = "import_data"
MAX_STORED_PROBLEMS = 5000
PROGRESS_EVERY = 2000

Progress = Callable[[int, int | None, str], None]


def _no_progress(done: int, total: int | None = None, message: str = "") -> None:
    return None


class ImportRefusedError(ValidationError):
    """The plan has problems; nothing was written. `report` holds them all."""

    def __init__(self, report: dict):
        self.report = report
        count = report["counts"]["problems"]
        first = report["problems"][0] if report["problems"] else {}
        super().__init__(
            f"Nothing was imported: {count} problem(s) found, the first: {describe(first)}. "
            "Fix them (see the dry-run report) and import again."
        )


@dataclass
class Problem:
    row: int | None  # the spreadsheet's row number; None for a problem of the mapping or the file
    column: str  # the column's letter (A, B, …) or "" when the problem is not one cell's
    header: str
    value: str
    reason: str
    sheet: str = ""
    severity: str = "error"

    def as_dict(self) -> dict:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "header": self.header,
            "value": shorten(self.value),
            "reason": self.reason,
            "severity": self.severity,
        }


# A report stores up to MAX_STORED_PROBLEMS problems and the page shows them: a cell's value in
# one is cut to this many characters, so a sheet of long cells does not make a huge report.
VALUE_SHOWN = 200


def shorten(value, limit: int = VALUE_SHOWN):
    """`value` cut to `limit` characters with an ellipsis, for showing it (not for importing it)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def describe(p: dict) -> str:
    if not p:
        return ""
    where = []
    if p.get("sheet"):
        where.append(f"sheet {p['sheet']!r}")
    if p.get("row"):
        where.append(f"row {p['row']}")
    if p.get("column"):
        where.append(f"column {p['column']} ({p['header']})" if p.get("header") else f"column {p['column']}")
    value = f" value {p['value']!r}:" if p.get("value") not in (None, "") else ""
    return f"{', '.join(where) or 'mapping'}:{value} {p['reason']}"


# ------------------------------------------------------------------------------------- uploads


def check_may_import(actor, study: Study) -> None:
    if not access.can(actor, PERMISSION, study):
        raise PermissionDenied(f"Your role in {study.name} does not allow importing data.")


@transaction.atomic
def store_upload(*, actor, study: Study, site: Site | None, name: str, chunks) -> ImportUpload:
    """Keep an uploaded file under MEDIA_ROOT/imports/<study>/ and remember who sent it."""
    check_may_import(actor, study)
    suffix = Path(name).suffix.lower()
    if suffix not in readers.SUFFIXES:
        raise ValidationError(
            f"{name}: Capture reads {', '.join(sorted(readers.SUFFIXES))} files; save the sheet as one of them."
        )
    if site is not None and not access.sites_visible_to(actor, study).filter(pk=site.pk).exists():
        raise PermissionDenied(f"You do not work at site {site.code}.")
    rel = Path("imports") / study.slug / f"{uuid.uuid4().hex}{suffix}"
    path = Path(settings.MEDIA_ROOT) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    max_bytes = readers.limit("IMPORT_MAX_BYTES")
    with path.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise ValidationError(
                    f"{name} is larger than the {max_bytes / 1e6:.0f} MB limit (CAPTURE['IMPORT_MAX_BYTES']); split it."
                )
            digest.update(chunk)
            out.write(chunk)
    upload = ImportUpload.objects.create(
        study=study,
        site=site,
        created_by=actor,
        original_name=Path(name).name[:255],
        path=str(rel),
        sha256=digest.hexdigest(),
        size=size,
    )
    previous = remembered_mapping(study, site)
    if previous is not None:
        upload.mapping = previous
        upload.spec = previous.spec
        upload.save(update_fields=["mapping", "spec"])
    return upload


def upload_path(upload: ImportUpload) -> Path:
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / upload.path).resolve()
    if root not in path.parents:
        raise ValidationError("The uploaded file is outside the media folder.")
    return path


def get_upload(user, study: Study, upload_id) -> ImportUpload:
    """An upload of the study, visible to who sent it and to study administrators; else 404."""
    upload = ImportUpload.objects.filter(study=study, pk=upload_id).select_related("site", "mapping").first()
    if upload is None or not (upload.created_by_id == user.pk or access.can(user, "manage_study", study)):
        raise Http404("No such upload.")
    return upload


def remembered_mapping(study: Study, site: Site | None) -> ImportMapping | None:
    """The mapping last saved for files from `site`, if any."""
    if site is None:
        return None
    return ImportMapping.objects.filter(study=study, site=site).order_by("-updated_at").first()


@transaction.atomic
def save_mapping(*, actor, study: Study, name: str, spec: dict, site: Site | None = None) -> ImportMapping:
    check_may_import(actor, study)
    Mapping.from_spec(spec)  # refuse a malformed mapping now, not at the next import
    name = name.strip()
    if not name:
        raise ValidationError("Give the mapping a name (for example the site and the file it is for).")
    mapping, created = ImportMapping.objects.get_or_create(study=study, name=name, defaults={"spec": spec})
    before = None if created else {"spec": mapping.spec, "site": mapping.site.code if mapping.site else None}
    mapping.spec = spec
    mapping.site = site
    mapping.updated_by = actor
    mapping.save()
    record_event(
        actor=actor,
        study=study,
        action="import_mapping.save",
        object_type="import_mapping",
        object_id=mapping.pk,
        object_label=name,
        before=before,
        after={"spec": spec, "site": site.code if site else None},
    )
    return mapping


# ------------------------------------------------------------------------------ study structure


@dataclass
class StudyForms:
    """The study's schedule as lookups: events per arm, forms per event, items per form."""

    events: dict[tuple[int, str], object]  # (arm id, event name) → Event
    event_forms: dict[tuple[int, str], EventForm]  # (event id, form name) → EventForm
    forms: dict[str, FormDefinition]  # form name → a version used by the schedule
    items: dict[str, dict[str, dict]]  # form name → item name → item
    elements: dict[str, DataElement]  # element ref → element

    @classmethod
    def of(cls, study: Study) -> StudyForms:
        event_forms = list(
            EventForm.objects.filter(event__arm__schedule=study.schedule).select_related("event", "form")
        )
        forms = {}
        for ef in event_forms:
            forms.setdefault(ef.form.name, ef.form)
        refs = {item["element"] for form in forms.values() for item in form.items()}
        elements = {
            e.ref: e
            for e in DataElement.objects.filter(forms__in=list(forms.values())).prefetch_related(
                "permissible_values"
            )
            if e.ref in refs
        }
        return cls(
            events={(ef.event.arm_id, ef.event.name): ef.event for ef in event_forms},
            event_forms={(ef.event_id, ef.form.name): ef for ef in event_forms},
            forms=forms,
            items={name: {i["name"]: i for i in form.items()} for name, form in forms.items()},
            elements=elements,
        )

    def targets(self) -> list[dict]:
        out = []
        for form_name, items in self.items.items():
            for item_name, item in items.items():
                element = self.elements.get(item["element"])
                texts = [item_name, item.get("label") or ""]
                if element is not None:
                    texts += [
                        element.name,
                        element.long_name,
                        element.question,
                        *element.spec.get("aliases", []),
                    ]
                out.append({"form": form_name, "item": item_name, "texts": texts})
        return out

    def choices(self) -> list[tuple[str, str]]:
        """(form.item, label) for a select of targets."""
        out = []
        for form_name, items in self.items.items():
            for item_name, item in items.items():
                element = self.elements.get(item["element"])
                label = item.get("label") or (element.question if element else item_name)
                out.append(
                    (f"{form_name}.{item_name}", f"{self.forms[form_name].title} › {label} ({item_name})")
                )
        return out

    def event_names(self) -> list[str]:
        seen = []
        for _, name in self.events:
            if name not in seen:
                seen.append(name)
        return seen


def suggest_mapping(study: Study, table: readers.Table, *, site: Site | None = None) -> dict:
    """A mapping spec to start from: the site's last mapping if it fits the file, the REDCap layout for a
    REDCap export, otherwise headers matched to items by name, question and aliases."""
    structure = StudyForms.of(study)
    remembered = remembered_mapping(study, site)
    if remembered is not None:
        wanted = {c["column"] for c in remembered.spec.get("columns", [])}
        if wanted and wanted <= set(table.headers):
            return remembered.spec
    if is_redcap_export(table.headers):
        return redcap_spec(structure, table.headers)
    suggested = suggest_columns(table.headers, structure.targets())
    subject_column = next(
        (
            h
            for h in table.headers
            if re.search(r"\b(subject|record|patient|participant|study|tcia)\b.*\b(id|code)\b|^id$", h, re.I)
        ),
        table.headers[0] if table.headers else "",
    )
    events = structure.event_names()
    return Mapping(
        subject_column=subject_column,
        event=events[0] if events else "",
        columns=[
            mapping_column(h, s["form"], s["item"]) for h, s in suggested.items() if h != subject_column
        ],
    ).to_spec()


def mapping_column(header: str, form: str, item: str) -> ColumnSpec:
    return ColumnSpec(column=header, form=form, item=item)


def redcap_spec(structure: StudyForms, headers: list[str]) -> dict:
    items: dict[str, list] = {}
    for form_name, form_items in structure.items.items():
        for name, item in form_items.items():
            items.setdefault(name, []).append((form_name, item.get("group")))
    events = structure.event_names()
    return redcap_mapping(headers, items, events, events[0] if events else "").to_spec()


# ------------------------------------------------------------------------------------------ plan


class SubjectRef(NamedTuple):
    """What an import needs of a subject; model instances for 100,000 subjects cost seconds."""

    pk: int
    subject_id: str
    site_id: int
    arm_id: int
    study_id: int
    arm_name: str


@dataclass
class _Pending:
    row: int
    subject: object
    event: object
    event_form: EventForm
    form_name: str
    instance: int
    values: dict
    blanks: set
    status: int | None
    columns: dict[str, ItemColumn]  # where-key (item or group[i].item) → column; shared by the form's rows
    cells: list  # the row as read (not a copy), to quote a cell in a problem
    # The fast path (see _FastForm): the fields already cleaned by the form's validator as the cells
    # were read, with their errors; `values` and `blanks` are then read only if the record exists.
    clean: dict | None = None
    errors: dict | None = None
    fast: _FastForm | None = None


@dataclass
class Plan:
    sheet: str
    rows: int
    writes: list[RecordWrite] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    details: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def report(self, *, committed: bool = False) -> dict:
        errors = self.errors
        problems = sorted(self.problems, key=lambda p: (p.row or 0, p.column))
        return {
            "sheet": self.sheet,
            "committed": committed,
            "counts": {
                "rows": self.rows,
                "new": self.new,
                "changed": self.changed,
                "unchanged": self.unchanged,
                "problems": len(errors),
                "warnings": len(self.problems) - len(errors),
            },
            "problems": [p.as_dict() for p in problems[:MAX_STORED_PROBLEMS]],
            "truncated": max(0, len(problems) - MAX_STORED_PROBLEMS),
            "changes": self.details[:200],
        }


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return number_text(value)
    return str(value).strip()


def build_plan(
    *, actor, study: Study, table: readers.Table, mapping: Mapping, progress: Progress = _no_progress
) -> Plan:
    """Clean and validate every row against the study; say what would be new, changed, unchanged.
    Writes nothing."""
    check_may_import(actor, study)
    structure = StudyForms.of(study)
    plan = Plan(sheet=table.sheet, rows=len(table.rows))
    sheet = table.sheet
    for warning in table.warnings:
        plan.problems.append(Problem(None, "", "", "", warning, sheet, "warning"))
    used = {
        mapping.subject_column,
        mapping.event_column,
        mapping.instance_column,
        mapping.repeat_form_column,
        *mapping.status_columns.values(),
        *(spec.column for spec in mapping.columns),
    }
    for row, index, formula in table.external:
        # The cached copy of another workbook's cell is not data Capture can check: the reader blanked
        # it; an imported column must not go in without it, an unused one only says so.
        header = table.headers[index] if index < len(table.headers) else ""
        plan.problems.append(
            Problem(
                row,
                readers.column_letter(index),
                header,
                formula,
                "The cell is a link to another workbook; its value is a copy that was not imported. "
                "Replace the link by the value (Copy, Paste Special › Values) and upload again.",
                sheet,
                "error" if header and header in used else "warning",
            )
        )
    if not table.rows:
        # An empty import would "succeed" with nothing written, which hides a wrong sheet or header row.
        plan.problems.append(
            Problem(
                None,
                "",
                "",
                "",
                f"The sheet has no data rows below the header (row {table.header_row}); nothing to import. "
                "Choose the sheet and the header row the data is under.",
                sheet,
            )
        )

    def mapping_error(reason: str, header: str = "") -> None:
        index = table.column_index(header) if header else None
        letter = readers.column_letter(index) if index is not None else ""
        plan.problems.append(Problem(None, letter, header, "", reason, sheet))

    def column(header: str, what: str) -> int | None:
        if not header:
            return None
        index = table.column_index(header)
        if index is None:
            mapping_error(
                f"The {what} column {header!r} is not in the sheet (its headers: {_headers(table)})."
            )
        return index

    subject_index = column(mapping.subject_column, "subject id")
    event_index = column(mapping.event_column, "event")
    instance_index = column(mapping.instance_column, "instance")
    repeat_index = column(mapping.repeat_form_column, "repeating form")
    status_index = {form: column(header, f"{form} status") for form, header in mapping.status_columns.items()}
    if mapping.event and mapping.event not in structure.event_names():
        mapping_error(
            f"There is no event {mapping.event!r}; the study's events: {', '.join(structure.event_names())}."
        )
    for form in mapping.status_columns:
        if form not in structure.forms:
            mapping_error(f"Status column for {form!r}: the study has no such form.")

    missing_codes = study.missing_code_set()
    for legacy, code in mapping.missing_values.items():
        if code not in missing_codes:
            mapping_error(
                f"The missing value {legacy!r} maps to {code!r}, which is not one of the study's missing-data codes "
                f"({', '.join(sorted(missing_codes))})."
            )
    duplicated = {h.rsplit(" (", 1)[0] for h in table.headers if re.search(r" \([A-Z]+\)$", h)}
    columns: dict[str, list[ItemColumn]] = {}
    for spec in mapping.columns:
        items = structure.items.get(spec.form)
        if items is None:
            mapping_error(
                f"Column {spec.column!r} maps to form {spec.form!r}, which this study does not use.",
                spec.column,
            )
            continue
        item = items.get(spec.item)
        if item is None:
            mapping_error(
                f"Column {spec.column!r} maps to {spec.form}.{spec.item}, but form {spec.form!r} has no item "
                f"{spec.item!r} (its items: {', '.join(items)}).",
                spec.column,
            )
            continue
        index = table.column_index(spec.column)
        if index is None:
            mapping_error(
                f"The mapped column {spec.column!r} is not in the sheet (its headers: {_headers(table)})."
            )
            continue
        if spec.column in duplicated:
            mapping_error(
                f"More than one column is headed {spec.column!r}; rename them in the file so each says what it holds.",
                spec.column,
            )
            continue
        element = structure.elements[item["element"]]
        codes = {pv.code: pv.meaning for pv in element.permissible_values.all()}
        unknown = sorted(
            {c for c in spec.values.values() if codes and c not in codes and c not in missing_codes}
        )
        if unknown:
            mapping_error(
                f"The value map of {spec.column!r} gives {', '.join(map(repr, unknown))}, not among the codes of "
                f"{spec.item} ({', '.join(codes)}).",
                spec.column,
            )
        factor = None
        if spec.unit:
            factor = unit_factor(spec.unit, element.unit) if element.unit else None
            if factor is None or element.datatype not in ("integer", "decimal"):
                mapping_error(
                    f"Column {spec.column!r} is in {spec.unit}, but {spec.item} is "
                    + (f"in {element.unit}" if element.unit else "without a unit")
                    + "; Capture knows no conversion. Convert the column in the file, or remove its unit.",
                    spec.column,
                )
                continue
        columns.setdefault(spec.form, []).append(
            ItemColumn(
                spec=spec,
                index=index,
                letter=readers.column_letter(index),
                datatype=element.datatype,
                multiple=item.get("widget") == "checkbox",
                codes=codes,
                group=item.get("group") if item.get("repeating") else None,
                date_format=spec.date_format or mapping.date_format,
                pivot=mapping.pivot(),
                missing=mapping.missing_values,
                missing_codes=missing_codes,
                factor=factor if factor != 1 else None,
                places=element.decimal_places,
            )
        )
    if not columns and not status_index:
        mapping_error("No column is mapped to a form item; map at least one.")
    if plan.errors:
        return plan

    arm_names = dict(study.schedule.arms.values_list("pk", "name"))
    visible = access.subjects_visible_to(actor, study)
    subjects = {
        row[1]: SubjectRef(*row, arm_names[row[3]])
        for row in visible.values_list("pk", "subject_id", "site_id", "arm_id", "study_id")
    }
    overwrite = mapping.overwrite
    where_by_form: dict[str, dict[str, ItemColumn]] = {}
    for form_name, form_columns in columns.items():
        places = where_by_form.setdefault(form_name, {})
        for col in form_columns:
            where = f"{col.group}[{col.spec.row}].{col.spec.item}" if col.group else col.spec.item
            places.setdefault(where, col)
    validators: dict[int, FormValidator] = {}
    shared: dict[tuple, dict] = {}
    fast = {
        form_name: _FastForm.of(form_name, form_columns, structure, validators, missing_codes, shared)
        for form_name, form_columns in columns.items()
    }
    pending: list[_Pending] = []
    seen: dict[tuple, int] = {}
    headers = table.headers
    total = len(table.rows)

    def cell_problem(row: int, index: int | None, value, reason: str) -> None:
        letter = readers.column_letter(index) if index is not None else ""
        header = headers[index] if index is not None else ""
        plan.problems.append(Problem(row, letter, header, _text(value), reason, sheet))

    for done, (row, cells) in enumerate(table.rows, 1):
        if done % PROGRESS_EVERY == 0:
            progress(done, total, f"Checking row {row}")
        subject_raw = cells[subject_index]
        subject_id = _text(subject_raw)
        if not subject_id:
            cell_problem(
                row, subject_index, subject_raw, "The subject id is blank; fill it in or delete the row."
            )
            continue
        subject = subjects.get(subject_id)
        if subject is None:
            cell_problem(
                row,
                subject_index,
                subject_raw,
                f"No subject {subject_id!r} in {study.name} at a site you can see. Enrol the subject first, or "
                "correct the id.",
            )
            continue
        if event_index is not None:
            label = _text(cells[event_index])
            event_name = redcap_event_name(label, mapping.event_values) if label else ""
        else:
            label = event_name = mapping.event
        event = structure.events.get((subject.arm_id, event_name))
        if event is None:
            arm_events = [n for (arm, n) in structure.events if arm == subject.arm_id]
            cell_problem(
                row,
                event_index,
                label,
                f"{subject_id} (arm {subject.arm_name}) has no event {event_name!r}; its events: "
                f"{', '.join(arm_events)}. Map the event label to one of them.",
            )
            continue
        repeat_form = _text(cells[repeat_index]) if repeat_index is not None else ""
        instance = 1
        if instance_index is not None and _text(cells[instance_index]):
            raw = _text(cells[instance_index])
            if not raw.isdigit() or int(raw) < 1:
                cell_problem(
                    row, instance_index, cells[instance_index], "The instance is a whole number from 1."
                )
                continue
            instance = int(raw)
        for form_name, form_columns in columns.items():
            if repeat_index is not None and repeat_form and repeat_form != form_name:
                continue  # a REDCap repeat row fills only its own instrument
            form_instance = instance if (repeat_index is None or repeat_form == form_name) else 1
            values: dict = {}
            blanks: set = set()
            where_cols = where_by_form[form_name]
            bad = False
            any_value = False
            fast_form = fast[form_name]
            clean: dict | None = None
            errors: dict | None = None
            if fast_form is not None:
                clean, errors = {}, {}
                for index, remembered, _, name, _, outcome_of in fast_form.columns:
                    raw = cells[index]
                    outcome = remembered(raw)
                    if outcome is None:
                        outcome = outcome_of(raw)
                    cleaned, error = outcome
                    if error is None:
                        if cleaned is not _SKIP:
                            clean[name] = cleaned
                    elif cleaned is _CELL_ERROR:
                        cell_problem(row, index, raw, f"{name}: {error}")
                        bad = True
                    else:
                        errors[name] = error
                any_value = bool(clean or errors)
                form_columns = ()  # done; `values` is read again only to merge into a stored record
            for col in form_columns:
                raw = cells[col.index]
                try:
                    value = col.clean(raw)
                except CellError as exc:
                    cell_problem(row, col.index, raw, f"{col.spec.item}: {exc}")
                    bad = True
                    continue
                name = col.spec.item
                if value is None:
                    if overwrite:  # only overwrite mode needs to know the blanks
                        blanks.add((col.group, col.spec.row, name))
                    continue
                any_value = True
                if col.spec.code:
                    values[name] = sorted(set(values.get(name, [])) | set(value))
                elif col.group:
                    values.setdefault(col.group, {}).setdefault(col.spec.row, {})[name] = value
                else:
                    values[name] = value
            status = None
            status_col = status_index.get(form_name)
            if status_col is not None and _text(cells[status_col]):
                text = _text(cells[status_col])
                if text not in ("0", "1", "2"):
                    cell_problem(
                        row, status_col, cells[status_col], "The form status is 0, 1 or 2 (REDCap's codes)."
                    )
                    bad = True
                else:
                    status = int(text)
            if bad or (not any_value and status is None):
                continue
            event_form = structure.event_forms.get((event.pk, form_name))
            if event_form is None:
                cell_problem(
                    row,
                    event_index,
                    label,
                    f"Form {form_name!r} is not collected at event {event.name!r} (arm {subject.arm_name}).",
                )
                continue
            if form_instance > 1 and not event_form.repeating:
                cell_problem(
                    row,
                    instance_index,
                    form_instance,
                    f"Form {form_name!r} does not repeat at {event.name!r}; its only instance is 1.",
                )
                continue
            key = (subject.pk, event.pk, form_name, form_instance)
            if key in seen:
                cell_problem(
                    row,
                    subject_index,
                    subject_raw,
                    f"Row {seen[key]} already fills {subject_id} / {event.name} / {form_name} #{form_instance}; "
                    "keep one of the two rows, or give each its own instance.",
                )
                continue
            seen[key] = row
            pending.append(
                _Pending(
                    row,
                    subject,
                    event,
                    event_form,
                    form_name,
                    form_instance,
                    values,
                    blanks,
                    status,
                    where_cols,
                    cells,
                    clean,
                    errors,
                    fast_form,
                )
            )
    progress(total, total, "Comparing with stored records")
    _compare(plan, pending, study, mapping, missing_codes, headers, sheet, validators)
    return plan


MEMO_LIMIT = 50_000  # outcomes remembered per column (bounded memory for free-text columns)
_SKIP = object()  # the cleaned value of a blank cell: it sets nothing
_CELL_ERROR = object()  # the cleaned value of a cell its column cannot clean; the error says why


class _FastForm:
    """The fast path of build_plan for one form: its columns each fill a field of their own (no
    checkbox or repeating-group column, no field filled twice, no calculated field) and the form
    has one version in the schedule. Each column's `outcome(cell)` — the column's cleaning of the
    cell, then the form validator's cleaning of that value: (clean value or _SKIP, error or None)
    — depends on the cell alone, so it is remembered by cell, and a new record is validated by
    `FormValidator.finish` without cleaning its fields again. Other forms return None from `of`:
    their records are validated whole, as are records that already exist (see `values`)."""

    def __init__(self, columns: list[tuple]):
        # (sheet index, memo.get, memo, item, ItemColumn, outcome)
        self.columns = columns

    @classmethod
    def of(
        cls,
        form_name: str,
        form_columns: list[ItemColumn],
        structure: StudyForms,
        validators: dict,
        missing,
        shared: dict[tuple, dict],
    ) -> _FastForm | None:
        versions = {
            ef.form.pk: ef.form for (_, name), ef in structure.event_forms.items() if name == form_name
        }
        if len(versions) != 1:
            return None
        form = next(iter(versions.values()))
        validator = validators.get(form.pk) or validators.setdefault(form.pk, FormValidator(form))
        names = [col.spec.item for col in form_columns]
        if len(set(names)) != len(names) or any(
            col.spec.code or col.group or col.multiple for col in form_columns
        ):
            return None
        columns = []
        for col in form_columns:
            validate = validator.cleaner(col.spec.item, missing_codes=missing)
            if validate is None:
                return None
            # Columns that clean alike (ten decimal columns, say) share what they remember.
            key = (col.cleaning_key(), validator.sharing_key(col.spec.item))
            memo = shared.setdefault(key, {})
            columns.append((col.index, memo.get, memo, col.spec.item, col, cls._outcome(col, validate, memo)))
        return cls(columns)

    @staticmethod
    def _outcome(col: ItemColumn, validate, memo: dict):
        def outcome(raw):
            try:
                value = col.clean_uncached(raw)
            except CellError as exc:
                found = (_CELL_ERROR, str(exc))
            else:
                if value is None:
                    found = (_SKIP, None)
                else:
                    cleaned, error = validate(value)  # text or numbers (no checkbox): safe to share
                    found = (_SKIP if cleaned is BLANK else cleaned, error)
            # False == 0 and True == 1 as keys: a bool must never meet a number's outcome, so
            # neither is remembered (a column of 0/1 numbers is rare outside checkbox columns).
            # A validation error names its field: it is not shared, so not remembered either.
            if (
                len(memo) < MEMO_LIMIT
                and (found[1] is None or found[0] is _CELL_ERROR)
                and (raw.__class__ is str or not (raw == 0 or raw == 1))
            ):
                memo[raw] = found
            return found

        return outcome

    def values(self, cells: list) -> tuple[dict, set]:
        """The row's values and blank cells, as the general path reads them: for merging the row
        into a record that already exists."""
        values: dict = {}
        blanks: set = set()
        for index, _, _, name, col, _ in self.columns:
            value = col.clean_uncached(cells[index])
            if value is None:
                blanks.add((None, 1, name))
            else:
                values[name] = value
        return values, blanks


def _headers(table: readers.Table) -> str:
    shown = ", ".join(repr(h) for h in table.headers[:12] if h)
    return shown + (" …" if len(table.headers) > 12 else "")


def _record_label(p: _Pending) -> str:
    return f"{p.subject.subject_id} / {p.event.name} / {p.form_name} #{p.instance}"


def _merged(p: _Pending, record: FormRecord | None, validator: FormValidator, overwrite: bool) -> dict:
    """The record's stored values with the row's over them (a blank cell clears only in overwrite mode)."""
    stored = record.data if record is not None else {}
    return merge_values(stored, p.values, groups=validator.groups, blanks=p.blanks, overwrite=overwrite)


def _compare(
    plan: Plan,
    pending: list[_Pending],
    study: Study,
    mapping: Mapping,
    missing_codes,
    headers,
    sheet,
    validators: dict[int, FormValidator],
) -> None:
    forms = {p.form_name for p in pending}
    existing = {}
    if pending:
        for record in FormRecord.objects.filter(subject__study=study, form_name__in=forms).select_related(
            "form"
        ):
            existing[(record.subject_id, record.event_id, record.form_name, record.instance)] = record
    locked_subjects = locked_subject_ids(study) if pending else set()
    subject_events: SubjectEvents | None = None
    for p in pending:
        record = existing.get((p.subject.pk, p.event.pk, p.form_name, p.instance)) if existing else None
        form = record.form if record is not None else p.event_form.form
        validator = validators.get(form.pk) or validators.setdefault(form.pk, FormValidator(form))
        status = (
            p.status if p.status is not None else (record.status if record is not None else mapping.status)
        )
        complete = status == Status.COMPLETE
        events = None
        if validator.compiled.events_read:
            # Expressions such as [baseline][weight] read the subject's other stored events, as
            # on entry; one query reads them for every subject of the sheet.
            if subject_events is None:
                subject_events = SubjectEvents({q.subject.pk for q in pending})
            events = subject_events.of(p.subject.pk, exclude=record)
        if p.fast is not None and record is None:
            # A new record whose fields were cleaned as the cells were read (build_plan's fast path).
            clean, errors = validator.finish(
                p.values,
                p.clean,
                p.errors or {},
                missing_codes=missing_codes,
                complete=complete,
                events=events,
            )
        else:
            if p.fast is not None:
                p.values, p.blanks = p.fast.values(p.cells)
            clean, errors = validator.clean(
                _merged(p, record, validator, mapping.overwrite),
                missing_codes=missing_codes,
                complete=complete,
                events=events,
            )
        if errors:
            for where, reason in errors.items():
                col = p.columns.get(where)
                if col is None:
                    plan.problems.append(Problem(p.row, "", "", "", f"{_record_label(p)}: {reason}", sheet))
                else:
                    plan.problems.append(
                        Problem(
                            p.row, col.letter, headers[col.index], _text(p.cells[col.index]), reason, sheet
                        )
                    )
            continue
        if p.subject.pk in locked_subjects and not is_unchanged(record, clean, status):
            plan.problems.append(
                Problem(
                    p.row,
                    "",
                    "",
                    "",
                    f"{p.subject.subject_id} is locked; a data manager must unlock the subject before its data "
                    "can change (or remove this row).",
                    sheet,
                )
            )
            continue
        if record is None:
            plan.new += 1
            kind = "new"
        elif is_unchanged(record, clean, status):
            plan.unchanged += 1
            kind = "unchanged"
        else:
            if record.locked:
                plan.problems.append(
                    Problem(
                        p.row,
                        "",
                        "",
                        "",
                        f"{_record_label(p)} is locked; a data manager must unlock it before the import can change it "
                        "(or remove this row).",
                        sheet,
                    )
                )
                continue
            plan.changed += 1
            kind = "changed"
        if kind == "unchanged":
            continue  # nothing to write, nothing to audit
        if len(plan.details) < 200:
            plan.details.append({"row": p.row, "record": _record_label(p), "kind": kind})
        plan.writes.append(
            RecordWrite(
                subject=p.subject,
                event=p.event,
                form=form,
                form_name=p.form_name,
                instance=p.instance,
                data=clean,
                status=status,
                existing_id=record.pk if record is not None else None,
                existing_version=record.version if record is not None else None,
            )
        )


# ---------------------------------------------------------------------------------------- run


def read(path: Path, mapping: Mapping, name: str = "") -> readers.Table:
    """Read the file as the mapping says; a ReadError becomes a ValidationError naming the file as
    the user knows it (`name`), not as it is stored."""
    try:
        return readers.read_table(path, **mapping.reader_options())
    except readers.ReadError as exc:
        message = str(exc).replace(Path(path).name, name) if name else str(exc)
        raise ValidationError(message) from None


def run_import(
    *,
    actor,
    study: Study,
    path: Path,
    mapping: Mapping,
    commit: bool,
    label: str = "",
    upload: ImportUpload | None = None,
    progress: Progress = _no_progress,
) -> dict:
    """Dry run (commit=False) or import a file. Returns the report; a commit with any problem raises
    ImportRefusedError and writes nothing."""
    check_may_import(actor, study)
    progress(0, None, "Reading the file")
    label = label or Path(path).name
    table = read(path, mapping, label)
    plan = build_plan(actor=actor, study=study, table=table, mapping=mapping, progress=progress)
    if not commit or plan.errors:
        report = plan.report()
        if upload is not None:
            ImportUpload.objects.filter(pk=upload.pk).update(
                report=report, spec=mapping.to_spec(), state=ImportUpload.CHECKED
            )
        if commit:
            raise ImportRefusedError(report)
        return report
    progress(len(table.rows), len(table.rows), f"Writing {len(plan.writes)} record(s)")
    report = plan.report(committed=True)
    with transaction.atomic():
        result = write_records(actor=actor, study=study, writes=plan.writes, reason=f"Import of {label}")
        report["counts"].update(
            new=result.created, changed=result.updated, unchanged=plan.unchanged + result.unchanged
        )
        record_event(
            actor=actor,
            study=study,
            action="import.commit",
            object_type="import",
            object_id=upload.pk
            if upload is not None
            else hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16],
            object_label=label,
            after={
                "file": label,
                "sha256": upload.sha256
                if upload is not None
                else hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                "sheet": table.sheet,
                "mapping": mapping.to_spec(),
                "counts": report["counts"],
            },
            reason=f"Import of {label}",
        )
        if upload is not None:
            ImportUpload.objects.filter(pk=upload.pk).update(
                report=report, spec=mapping.to_spec(), state=ImportUpload.COMMITTED
            )
    return report


# ------------------------------------------------------------------------------ annotated report

PROBLEM_FILL = "FFC7CE"


def annotated_workbook(path: Path, report: dict, *, sheet: str = "", header_row: int = 1) -> bytes:
    """The original workbook with each problem cell filled red and commented, and a Problems sheet.

    An .xlsx keeps its formatting; any other file is copied cell by cell into a new workbook first.
    The report is a file people open, so it holds no live formula and no external link: an .xlsx is
    read with its cached values (what Capture imported, formulas replaced by their results) and
    without its links to other workbooks; every text cell is stored as text, so an uploaded
    "=HYPERLINK(…)" shows as typed (capture.cells explains the attack)."""
    from openpyxl import Workbook, load_workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill

    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        readers.check_archive(path)
        book = load_workbook(path, data_only=True, keep_links=False, keep_vba=False)
        ws = book[sheet] if sheet and sheet in book.sheetnames else book.worksheets[0]
    else:
        table = readers.read_table(path, sheet=sheet, header_row=1, header_rows=1)
        book = Workbook()
        ws = book.active
        ws.title = (table.sheet or "Sheet1")[:31]
        grid = _raw_grid(path, sheet)
        for r, cells in enumerate(grid, 1):
            for c, value in enumerate(cells, 1):
                if value not in ("", None):
                    _as_text(ws.cell(r, c, value))
    fill = PatternFill("solid", start_color=PROBLEM_FILL, end_color=PROBLEM_FILL)
    by_cell: dict[tuple[int, str], list[str]] = {}
    for p in report.get("problems", []):
        if p.get("row") and p.get("column"):
            by_cell.setdefault((p["row"], p["column"]), []).append(p["reason"])
        elif p.get("row"):
            by_cell.setdefault((p["row"], "A"), []).append(p["reason"])
    for (row, letter), reasons in by_cell.items():
        cell = ws[f"{letter}{row}"]
        cell.fill = fill
        cell.comment = Comment("\n".join(reasons)[:30000], "Capture")
    summary = book.create_sheet("Problems")
    summary.append(["Sheet", "Row", "Column", "Header", "Value", "Problem", "Severity"])
    for cell in summary[1]:
        cell.font = Font(bold=True)
    for p in report.get("problems", []):
        summary.append(
            [p["sheet"], p["row"], p["column"], p["header"], p["value"], p["reason"], p["severity"]]
        )
        for cell in summary[summary.max_row]:
            _as_text(cell)
    if report.get("truncated"):
        summary.append(["", "", "", "", "", f"… and {report['truncated']} more problem(s) not listed", ""])
    for other in book.worksheets:
        # A formula left in any sheet (an .xlsx without cached values keeps none, but a sheet could
        # still hold a text cell typed as formula) is stored as the text it is.
        for row in other.iter_rows():
            for cell in row:
                _as_text(cell)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _as_text(cell) -> None:
    """openpyxl stores a str that starts with "=" as a formula; keep it a text cell."""
    if cell.data_type == "f" and isinstance(cell.value, str):
        cell.data_type = "s"


def _raw_grid(path: Path, sheet: str) -> list[list]:
    """Every row of the sheet as read, header rows included, for copying into the report."""
    table = readers.read_table(path, sheet=sheet, header_row=1, header_rows=1)
    grid: list[list] = [list(table.headers)]
    last = 1
    for number, cells in table.rows:
        while last < number - 1:
            grid.append([])
            last += 1
        grid.append(list(cells))
        last = number
    return grid
