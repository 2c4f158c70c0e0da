"""`content=record`: export (flat / eav; json, csv, xml), import (json / csv) and delete.

Export reads the records the token's user may see, de-identified when their role lacks
`view_identifiers` (identifier columns left out, dates shifted per subject). Import writes
through `capture.records.services.save_record`, all rows or none. Delete goes through
`capture.records.services.delete_record`.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Min
from django.http import HttpResponse
from django.utils import timezone

from capture.definitions.models import FormDefinition
from capture.records import services as record_service
from capture.records.bulk import FormValidator, RecordWrite, write_records
from capture.records.models import FormRecord, Status
from capture.records.services import DELETE_PERMISSION, delete_record, other_events
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject

from ..catalog import deidentified_for, present_data
from . import render
from .params import Params, RedcapError
from .project import RECORD_ID, STATUS_LABELS, Column, Project, RcEvent, label_value, raw_value

EVENT_COL = "redcap_event_name"
INSTRUMENT_COL = "redcap_repeat_instrument"
INSTANCE_COL = "redcap_repeat_instance"
DAG_COL = "redcap_data_access_group"
SPECIAL = {RECORD_ID, EVENT_COL, INSTRUMENT_COL, INSTANCE_COL, DAG_COL, "redcap_survey_identifier"}
IMPORT_REASON = "REDCap API import"
# FormRecord.instance is a 32-bit integer column: a larger instance would fail at the insert.
MAX_INSTANCE = 2**31 - 1
# Subjects whose records an export reads in one query, and rows an import reads and writes at a time
# (inside its one transaction): they bound the server's memory, not the size of an export or import.
SUBJECT_CHUNK = 500
IMPORT_CHUNK = 1000


def _require(user, study, codename: str, message: str) -> None:
    if not access.can(user, codename, study):
        raise RedcapError(message, status=403)


# ----------------------------------------------------------------------------- export


def _select_columns(
    project: Project, fields: list[str], forms: list[str], deidentified: bool
) -> list[Column]:
    bad_fields = [
        f for f in fields if f != RECORD_ID and f not in project.fields_by_name and f not in project.columns
    ]
    if bad_fields:
        raise RedcapError(
            f'The following values in the parameter "fields" are not valid: {", ".join(bad_fields)}'
        )
    bad_forms = [f for f in forms if f not in project.instruments]
    if bad_forms:
        raise RedcapError(
            f'The following values in the parameter "forms" are not valid: {", ".join(bad_forms)}'
        )
    everything = not fields and not forms
    chosen = []
    for inst in project.instruments.values():
        for column in inst.columns:
            named = column.name in fields or (column.field is not None and column.field.name in fields)
            if everything or inst.name in forms or named:
                chosen.append(column)
    if deidentified:
        chosen = [c for c in chosen if c.field is None or not c.field.identifier]
    return chosen


def _parse_moment(text: str, name: str) -> dt.datetime | None:
    if not text:
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return timezone.make_aware(dt.datetime.strptime(text, pattern))  # noqa: DTZ007 - made aware on the server's zone, as REDCap reads it
        except ValueError:
            continue
    raise RedcapError(f'The value of the parameter "{name}" is not a date and time: use YYYY-MM-DD HH:MM:SS.')


def shift_range(study, policy: Disclosure) -> tuple[int, int]:
    """The smallest and largest number of days `policy` moves the study's timestamps: a window in
    the user's world, moved back by these, holds in the database every moment that may fall in it."""
    if policy.identified:
        return 0, 0
    found = Subject.objects.filter(study=study).aggregate(
        low=Min("date_shift_days"), high=Max("date_shift_days")
    )
    return min(found["low"] or 0, 0), max(found["high"] or 0, 0)


def _changed_between(subjects, study, policy: Disclosure, begin, end):
    """The subjects with a record changed from `begin` to `end`, moments of the user's world: a
    de-identified reader's window is compared with the shifted times they see, so its edges do not
    tell real times (nor the shift) apart."""
    changed = FormRecord.objects.filter(subject__in=subjects)
    low, high = shift_range(study, policy)
    if begin:
        changed = changed.filter(updated_at__gte=begin - dt.timedelta(days=high))
    if end:
        changed = changed.filter(updated_at__lte=end - dt.timedelta(days=low))
    if policy.identified:
        return subjects.filter(pk__in=changed.values("subject_id"))
    keep = set()
    for subject_pk, shift, moment in changed.values_list(
        "subject_id", "subject__date_shift_days", "updated_at"
    ):
        seen = policy.timestamp_by_shift(shift, moment)
        if (not begin or seen >= begin) and (not end or seen <= end):
            keep.add(subject_pk)
    return subjects.filter(pk__in=keep)


def _filter_logic(expression: str, missing_codes: set[str]):
    """A predicate on (row values, event values) for REDCap's filterLogic, in Capture's expression language."""
    from capture.definitions import expressions

    try:
        ast = expressions.parse(expression)
    except expressions.ExpressionError as exc:
        raise RedcapError(f"The filterLogic is not valid: {exc}") from None
    except RecursionError:  # until expressions.parse reports deep nesting as an ExpressionError
        raise RedcapError("The filterLogic is not valid: it is nested too deeply.") from None
    missing = frozenset(missing_codes)

    def keep(values: dict, events: dict) -> bool:
        return expressions.truthy(expressions.evaluate_ast(ast, values, events=events, missing_codes=missing))

    return keep


def _cell_reader(project: Project, column: Column, labels: bool, checkbox_label: bool):
    """A function (status, data) -> the column's text, chosen once per export, not once per cell."""
    if column.is_complete:
        if labels:
            return lambda status, data: STATUS_LABELS[status]
        return lambda status, data: str(status)
    f = column.field

    def text(value):
        return label_value(project, f, value) if labels else raw_value(f, value)

    if f.group:  # before `multiple`: an item of a repeating group has one column per row (project.py)
        index = column.row - 1

        def group_cell(status, data):
            rows = data.get(f.group) or []
            return text(rows[index].get(f.name) if len(rows) > index else None)

        return group_cell
    if f.multiple:
        code = column.code
        marks = ("1", "0")
        if labels:
            marks = (dict(f.codes)[code], "") if checkbox_label else ("Checked", "Unchecked")

        def checkbox(status, data):
            value = data.get(f.name)
            return marks[0] if isinstance(value, list) and code in value else marks[1]

        return checkbox
    return lambda status, data: text(data.get(f.name))


def export_records(user, study, project: Project, p: Params) -> HttpResponse:
    fmt = p.choice("format", ("json", "csv", "xml"), "xml")
    record_type = p.choice("type", ("flat", "eav"), "flat")
    labels = p.choice("rawOrLabel", ("raw", "label"), "raw") == "label"
    label_headers = p.choice("rawOrLabelHeaders", ("raw", "label"), "raw") == "label"
    checkbox_label = p.flag("exportCheckboxLabel")
    with_dag = p.flag("exportDataAccessGroups")
    policy = Disclosure.for_user(user, study)
    deidentified = not policy.identified
    columns = _select_columns(project, p.items("fields"), p.items("forms"), deidentified)
    events = p.items("events")
    bad_events = [e for e in events if e not in project.events_by_name]
    if bad_events:
        raise RedcapError(
            f'The following values in the parameter "events" are not valid: {", ".join(bad_events)}'
        )
    keep = _filter_logic(p.get("filterLogic"), set(project.missing_codes)) if p.get("filterLogic") else None
    begin = _parse_moment(p.get("dateRangeBegin"), "dateRangeBegin")
    end = _parse_moment(p.get("dateRangeEnd"), "dateRangeEnd")

    subjects = access.subjects_visible_to(user, study).select_related("site").order_by("subject_id")
    record_ids = p.items("records")
    if record_ids:
        subjects = subjects.filter(subject_id__in=record_ids)
    if begin or end:
        subjects = _changed_between(subjects, study, policy, begin, end)

    head = [RECORD_ID]
    if project.longitudinal:
        head.append(EVENT_COL)
    if project.has_repeating:
        head += [INSTRUMENT_COL, INSTANCE_COL]
    if with_dag:
        head.append(DAG_COL)
    names = head + [c.name for c in columns]
    rows = _export_rows(
        project,
        list(subjects.only("pk", "subject_id", "arm_id", "date_shift_days", "site__code")),
        columns,
        events=events,
        keep=keep,
        deidentified=deidentified,
        labels=labels,
        checkbox_label=checkbox_label,
        with_dag=with_dag,
    )
    # Rows are made as they are sent (render.rows_stream): a whole study is never in memory at once.
    if record_type == "eav":
        return render.rows_stream(fmt, _eav(project, rows, columns, head))
    headers = None
    if label_headers and fmt == "csv":
        headers = [_header_label(project, name) for name in names]
    return render.rows_stream(fmt, rows, names, headers)


def _export_rows(
    project: Project,
    subjects: list,
    columns: list[Column],
    *,
    events: list[str],
    keep,
    deidentified: bool,
    labels: bool,
    checkbox_label: bool,
    with_dag: bool,
) -> Iterator[dict]:
    """The flat rows, subject by subject, their records read SUBJECT_CHUNK subjects at a time."""
    forms = {c.form for c in columns} or set(project.instruments)
    # filterLogic may read any item, so it needs every form's records, not only the exported ones.
    loaded = set(project.instruments) if keep else forms
    readers = [(c.name, c.form, _cell_reader(project, c, labels, checkbox_label)) for c in columns]
    for start in range(0, len(subjects), SUBJECT_CHUNK):
        chunk = subjects[start : start + SUBJECT_CHUNK]
        by_subject: dict[int, dict] = defaultdict(dict)
        # Only what the rows need, as tuples: the form's spec (large JSON) stays in the database.
        fetched = FormRecord.objects.filter(
            subject_id__in=[s.pk for s in chunk], form_name__in=loaded
        ).values_list("subject_id", "event_id", "form_name", "instance", "status", "data")
        for subject_pk, event_pk, form_name, instance, status, data in fetched:
            by_subject[subject_pk][(event_pk, form_name, instance)] = (status, data)
        for subject in chunk:
            records = by_subject.pop(subject.pk, {})
            if deidentified:
                # The stored values as this user may see them: no identifiers, dates shifted.
                records = {
                    key: (
                        status,
                        present_data(
                            project.instruments[key[1]].fields,
                            data,
                            deidentified=True,
                            shift_days=subject.date_shift_days,
                        ),
                    )
                    for key, (status, data) in records.items()
                }
            if records:
                yield from _subject_rows(
                    project,
                    subject,
                    records,
                    readers,
                    forms,
                    events=events,
                    keep=keep,
                    labels=labels,
                    with_dag=with_dag,
                )


def _subject_rows(
    project: Project,
    subject,
    records: dict[tuple, tuple[int, dict]],
    readers: list,
    forms: set[str],
    *,
    events: list[str],
    keep,
    labels: bool,
    with_dag: bool,
) -> Iterator[dict]:
    """One subject's rows; `records` maps (event pk, form, instance) to (status, values as shown)."""
    event_values = {}
    if keep:
        for rc_event in project.events:
            merged: dict = {}
            for form_name in rc_event.form_names:
                record = records.get((rc_event.event.pk, form_name, 1))
                if record is not None:
                    merged.update(record[1])
            event_values[rc_event.unique_name] = event_values[rc_event.event.name] = merged
    for rc_event in project.events:
        if rc_event.event.arm_id != subject.arm_id or (events and rc_event.unique_name not in events):
            continue
        event_pk = rc_event.event.pk
        slots: list[tuple[str, int, list[str]]] = []
        plain = [f for f in rc_event.form_names if f not in rc_event.repeating]
        if any((event_pk, f, 1) in records for f in plain if f in forms):
            slots.append(("", 0, plain))
        for form_name in rc_event.form_names:
            if form_name in rc_event.repeating and form_name in forms:
                instances = sorted(k[2] for k in records if k[0] == event_pk and k[1] == form_name)
                slots.extend((form_name, n, [form_name]) for n in instances)
        for instrument, instance, slot_forms in slots:
            present = {
                f: records[(event_pk, f, instance or 1)]
                for f in slot_forms
                if (event_pk, f, instance or 1) in records
            }
            if keep is not None:
                values: dict = {RECORD_ID: subject.subject_id}
                for _, data in present.values():
                    values.update(data)
                if not keep(values, event_values):
                    continue
            row: dict = {RECORD_ID: subject.subject_id}
            if project.longitudinal:
                row[EVENT_COL] = rc_event.unique_name
                if labels:
                    row[EVENT_COL] = (
                        f"{rc_event.label} (Arm {rc_event.arm_num}: {rc_event.arm_name})"
                        if len(project.arms) > 1
                        else rc_event.label
                    )
            if project.has_repeating:
                row[INSTRUMENT_COL] = (
                    project.instruments[instrument].label if instrument and labels else instrument
                )
                row[INSTANCE_COL] = str(instance) if instance else ""
            if with_dag:
                row[DAG_COL] = subject.site.code.lower()
            for name, form_name, read in readers:
                record = present.get(form_name)
                row[name] = "" if record is None else read(*record)
            yield row


def _header_label(project: Project, name: str) -> str:
    fixed = {
        RECORD_ID: "Subject ID",
        EVENT_COL: "Event Name",
        INSTRUMENT_COL: "Repeat Instrument",
        INSTANCE_COL: "Repeat Instance",
        DAG_COL: "Data Access Group",
    }
    if name in fixed:
        return fixed[name]
    column = project.columns[name]
    if column.is_complete:
        return "Complete?"
    if column.code:
        return f"{column.field.label} (choice={dict(column.field.codes)[column.code]})"
    if column.row:
        return f"{column.field.label} ({column.row})"
    return column.field.label


def _eav(project: Project, rows: Iterable[dict], columns: list[Column], head: list[str]) -> Iterator[dict]:
    for row in rows:
        base = {"record": row[RECORD_ID]}
        for key in head[1:]:
            if key != DAG_COL:
                base[key] = row[key]
        for column in columns:
            value = row.get(column.name, "")
            if value in ("", None):
                continue
            if column.code:
                if value in ("0", "Unchecked"):
                    continue
                yield {**base, "field_name": column.field.name, "value": column.code}
                continue
            yield {**base, "field_name": column.name, "value": value}


# ----------------------------------------------------------------------------- import


def _parse_rows(fmt: str, record_type: str, text: str) -> Iterator[dict]:
    """The rows of `data`, each with string keys and values, read one at a time: a large import
    holds its text and the current chunk, never all its rows as objects."""
    rows = _json_objects(text) if fmt == "json" else _csv_rows(text)
    plain = (
        {str(k).strip(): ("" if v is None else str(v)) for k, v in row.items() if k is not None}
        for row in rows
    )
    if record_type == "eav":
        return iter(_eav_to_flat(plain))
    return plain


def _csv_rows(text: str) -> Iterator[dict]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a field past the csv module's 128 KB limit
        raise RedcapError(f"The CSV data are not valid at line {reader.line_num}: {exc}.") from None


_SPACE = re.compile(r"[ \t\n\r]*")


def _json_objects(text: str) -> Iterator[dict]:
    """The objects of a JSON list (or one object), decoded one by one with the json module."""
    decoder = json.JSONDecoder()
    try:
        at = _SPACE.match(text, 0).end()
        if text.startswith("{", at):
            row, at = decoder.raw_decode(text, at)
            if text[_SPACE.match(text, at).end() :]:
                raise RedcapError("The data are not valid JSON: extra data after the object.")
            yield row
            return
        if not text.startswith("[", at):
            if not text[at:]:
                raise RedcapError("The data are not valid JSON: they are empty.")
            decoder.raw_decode(text, at)  # names what is wrong, if anything is
            raise RedcapError("The data must be a JSON list of objects, one per row.")
        at = _SPACE.match(text, at + 1).end()
        if text.startswith("]", at):
            return
        while True:
            row, at = decoder.raw_decode(text, at)
            if not isinstance(row, dict):
                raise RedcapError("The data must be a JSON list of objects, one per row.")
            yield row
            at = _SPACE.match(text, at).end()
            if text.startswith(",", at):
                at = _SPACE.match(text, at + 1).end()
            elif text.startswith("]", at):
                if text[_SPACE.match(text, at + 1).end() :]:
                    raise RedcapError("The data are not valid JSON: extra data after the list.")
                return
            else:
                raise RedcapError(f"The data are not valid JSON: expected ',' or ']' at character {at}.")
    except RecursionError:
        raise RedcapError("The data are not valid JSON here: they are nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and int() past its 4300-digit limit
        raise RedcapError(f"The data are not valid JSON: {exc}") from None


def _eav_to_flat(rows: Iterable[dict]) -> list[dict]:
    flat: dict[tuple, dict] = {}
    for row in rows:
        key = (
            row.get("record", ""),
            row.get(EVENT_COL, ""),
            row.get(INSTRUMENT_COL, ""),
            row.get(INSTANCE_COL, ""),
        )
        target = flat.setdefault(
            key, {RECORD_ID: key[0], EVENT_COL: key[1], INSTRUMENT_COL: key[2], INSTANCE_COL: key[3]}
        )
        target.setdefault("__eav", []).append((row.get("field_name", ""), row.get("value", "")))
    return list(flat.values())


def _convert_date(value: str, datatype: str, date_format: str) -> str:
    if date_format == "ymd" or datatype not in ("date", "datetime") or not value:
        return value
    day_part, _, time_part = value.partition(" ")
    parts = day_part.replace("-", "/").split("/")
    if len(parts) != 3:
        return value  # let validation name the problem
    first, second, year = parts
    month, day = (first, second) if date_format == "mdy" else (second, first)
    try:
        iso = dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return value
    return f"{iso} {time_part}".strip()


def _has_data(column: Column, value: str) -> bool:
    if value == "":
        return False
    if column.is_complete:
        return value != "0"
    if column.code:
        return value not in ("0",)
    return True


def import_records(user, study, project: Project, p: Params) -> HttpResponse:
    return_format = p.choice("returnFormat", ("json", "csv", "xml"), "xml")
    fmt = p.get("format", "xml").lower() or "xml"
    if fmt not in ("json", "csv"):
        raise RedcapError("Capture imports records as JSON or CSV; send format=json or format=csv.")
    record_type = p.choice("type", ("flat", "eav"), "flat")
    overwrite = p.choice("overwriteBehavior", ("normal", "overwrite"), "normal") == "overwrite"
    return_content = p.choice("returnContent", ("count", "ids", "auto_ids", "nothing"), "count")
    date_format = p.choice("dateFormat", ("ymd", "mdy", "dmy"), "ymd")
    if p.flag("forceAutoNumber"):
        raise RedcapError(
            "Capture assigns subject ids at enrolment, so forceAutoNumber is not available; enrol the subjects "
            "first (web, or POST /api/v1/studies/<study>/subjects/) and import with their ids."
        )
    _require(user, study, "enter_data", "You do not have API Import/Update privileges")
    if deidentified_for(user, study):
        raise RedcapError("Your role sees de-identified data only, so it cannot import records.", status=403)
    if "data" not in p.data:
        raise RedcapError('The parameter "data" is missing: send the records to import.')
    rows = _parse_rows(fmt, record_type, p.data["data"])

    subjects = {
        s.subject_id: s
        for s in access.subjects_visible_to(user, study).select_related("site", "arm", "study")
    }
    importer = _Importer(user, study, project, subjects, overwrite=overwrite, date_format=date_format)
    with transaction.atomic():
        ids = importer.run(rows)
        if importer.errors:
            # Nothing is written unless every row is good (REDCap imports are all-or-nothing too).
            raise RedcapError("\n".join(importer.errors))
    if return_content == "nothing":
        return render.value_response(return_format, {})
    if return_content == "ids":
        return render.value_response(return_format, list(ids))
    if return_content == "auto_ids":
        return render.value_response(return_format, [f"{rid},{rid}" for rid in ids])
    count = len(ids)
    return render.value_response(return_format, {"count": count} if return_format == "json" else count)


def _import_row(importer: _Importer, row: dict, number: int) -> None:
    project, subjects, overwrite = importer.project, importer.subjects, importer.overwrite
    next_instance, errors = importer.next_instance, importer.errors
    rid = str(row.get(RECORD_ID, "")).strip()
    where = f"row {number}"
    if not rid:
        raise RedcapError(f'{where}: the record id field "{RECORD_ID}" is missing or blank.')
    subject = subjects.get(rid)
    if subject is None:
        raise RedcapError(
            f'{where}: record "{rid}" does not exist, or is at a site you do not see. Capture assigns ids at '
            "enrolment: enrol the subject first, then import its data."
        )
    rc_event = project.event_for(subject.arm_id, row.get(EVENT_COL, "").strip())
    if rc_event is None:
        raise RedcapError(
            f'{where}: "{row.get(EVENT_COL, "")}" is not an event of record {rid}\'s arm; '
            f"use one of: {', '.join(e.unique_name for e in project.events if e.event.arm_id == subject.arm_id)}."
        )
    instrument = row.get(INSTRUMENT_COL, "").strip()
    instance_raw = str(row.get(INSTANCE_COL, "")).strip()

    cells: dict[str, list[tuple[Column, str]]] = defaultdict(list)
    pairs = list(row.get("__eav", [])) + [(k, v) for k, v in row.items() if k not in SPECIAL and k != "__eav"]
    unknown = []
    for name, value in pairs:
        value = "" if value is None else str(value).strip()
        column = project.columns.get(name)
        if column is None and name in project.fields_by_name:  # EAV: a checkbox by its base name
            form_name, f = project.fields_by_name[name]
            if f.multiple:
                code = value
                column = next(
                    (c for c in project.instruments[form_name].columns if c.field is f and c.code == code),
                    None,
                )
                if column is None:
                    errors.append(f'"{rid}","{name}","{value}","not one of the choices"')
                    continue
                value = "1"
        if column is None:
            unknown.append(name)
            continue
        cells[column.form].append((column, value))
    if unknown:
        raise RedcapError(
            "The following fields were not found in the project as real data fields: " + ", ".join(unknown)
        )

    targets: list[tuple[str, int | str]] = []
    if instrument:
        if instrument not in rc_event.repeating:
            raise RedcapError(
                f'{where}: instrument "{instrument}" does not repeat at event {rc_event.unique_name}.'
            )
        for form_name, form_cells in cells.items():
            if form_name != instrument and any(_has_data(c, v) for c, v in form_cells):
                raise RedcapError(
                    f'{where}: a row for repeating instrument "{instrument}" carries values of "{form_name}"; '
                    "put them on their own row."
                )
        if instance_raw.lower() == "new":
            instance: int | str = "new"
        else:
            try:
                instance = int(instance_raw or "1")
                if not 1 <= instance <= MAX_INSTANCE:
                    raise ValueError(instance)
            except ValueError:
                raise RedcapError(
                    f'{where}: redcap_repeat_instance must be a number from 1 to {MAX_INSTANCE} or "new".'
                ) from None
        targets.append((instrument, instance))
    else:
        for form_name, form_cells in cells.items():
            # Blank cells matter only when they overwrite, and only on the form's own row.
            erases = overwrite and form_name in rc_event.form_names and form_name not in rc_event.repeating
            if not any(_has_data(c, v) for c, v in form_cells) and not erases:
                continue
            if form_name not in rc_event.form_names:
                raise RedcapError(
                    f'{where}: form "{form_name}" is not collected at event {rc_event.unique_name}.'
                )
            if form_name in rc_event.repeating:
                raise RedcapError(
                    f'{where}: form "{form_name}" repeats at {rc_event.unique_name}; give redcap_repeat_instrument '
                    "and redcap_repeat_instance."
                )
            targets.append((form_name, 1))

    for form_name, instance in targets:
        key = (subject.pk, rc_event.event.pk, form_name)
        if instance == "new":
            if key not in next_instance:
                last = FormRecord.objects.filter(
                    subject=subject, event=rc_event.event, form_name=form_name
                ).aggregate(m=Max("instance"))["m"]
                next_instance[key] = (last or 0) + 1
            instance = next_instance[key]
            next_instance[key] += 1
        importer.apply(subject, rc_event, form_name, int(instance), cells.get(form_name, []), rid)


@dataclass
class _Pending:
    """One form record an import writes: its values so far, and the stored record (None: new)."""

    subject: Subject
    rc_event: RcEvent
    form_name: str
    instance: int
    existing: FormRecord | None
    values: dict
    status: int
    rid: str


class _Importer:
    """Applies an import's rows IMPORT_CHUNK at a time: one query reads the stored records of a
    chunk's subjects, the changed ones are validated as `save_record` validates (clean_record
    through bulk.FormValidator, the form compiled once, other events read when an expression names
    them); the changed ones (services.is_unchanged) are written with
    `capture.records.bulk.write_records` (versions, locks, one audit event per record), all in the
    caller's transaction. Several rows for one record merge into one write."""

    def __init__(self, user, study, project: Project, subjects: dict, *, overwrite: bool, date_format: str):
        self.user, self.study, self.project, self.subjects = user, study, project, subjects
        self.overwrite, self.date_format = overwrite, date_format
        self.missing_codes = study.missing_code_set()
        self.errors: list[str] = []
        self.next_instance: dict[tuple, int] = {}
        self.stored: dict[tuple, FormRecord] = {}
        self.pending: dict[tuple, _Pending] = {}
        self.forms: dict[int, FormDefinition] = {}
        # The one validator (clean_record), the form compiled once: compiled() checks freshness
        # with a query.
        self.validators: dict[int, FormValidator] = {}

    def run(self, rows: Iterable[dict]) -> dict[str, None]:
        """Import every row; returns the record ids in order. Problems go to `errors`."""
        ids: dict[str, None] = {}
        numbered = enumerate(rows, start=1)
        while chunk := list(itertools.islice(numbered, IMPORT_CHUNK)):
            self._read_stored(row for _, row in chunk)
            for number, row in chunk:
                try:
                    _import_row(self, row, number)
                except RedcapError as exc:
                    self.errors.append(exc.message)
                    continue
                ids.setdefault(row.get(RECORD_ID, ""), None)
            self._write()
        return ids

    def _read_stored(self, rows: Iterable[dict]) -> None:
        wanted = {str(row.get(RECORD_ID, "")).strip() for row in rows}
        pks = [self.subjects[rid].pk for rid in wanted if rid in self.subjects]
        self.stored = {
            (r.subject_id, r.event_id, r.form_name, r.instance): r
            for r in FormRecord.objects.filter(subject_id__in=pks).only(
                "pk",
                "subject_id",
                "event_id",
                "form_id",
                "form_name",
                "instance",
                "status",
                "version",
                "data",
            )
        }

    def apply(self, subject, rc_event: RcEvent, form_name: str, instance: int, form_cells, rid: str) -> None:
        """Put one row's cells of one form record onto what the import has for it so far."""
        key = (subject.pk, rc_event.event.pk, form_name, instance)
        pending = self.pending.get(key)
        if pending is None:
            existing = self.stored.get(key)
            pending = _Pending(
                subject,
                rc_event,
                form_name,
                instance,
                existing,
                _copy_values(existing.data) if existing else {},
                existing.status if existing else 0,
                rid,
            )
        values, status, has_data = pending.values, pending.status, False
        for column, value in form_cells:
            if column.is_complete:
                if value != "":
                    if value not in ("0", "1", "2"):
                        self.errors.append(f'"{rid}","{column.name}","{value}","use 0, 1 or 2"')
                        continue
                    status = int(value)
                    has_data = has_data or status != 0
                continue
            f = column.field
            has_data = has_data or _has_data(column, value)
            value = _convert_date(value, f.datatype, self.date_format)
            if f.group:
                group_rows = values.setdefault(f.group, [])
                while len(group_rows) < column.row:
                    group_rows.append({})
                if value == "":
                    if self.overwrite:
                        group_rows[column.row - 1].pop(f.name, None)
                else:
                    group_rows[column.row - 1][f.name] = value
            elif f.multiple:
                current = values.get(f.name)
                codes = set(current) if isinstance(current, list) else set()
                if value.lower() in ("1", "checked"):
                    codes.add(column.code)
                elif value.lower() in ("0", "unchecked") or (value == "" and self.overwrite):
                    codes.discard(column.code)
                values[f.name] = sorted(codes)
            elif value == "":
                if self.overwrite:
                    values.pop(f.name, None)
            else:
                values[f.name] = value
        pending.status = status
        if key in self.pending or pending.existing is not None or has_data:
            self.pending[key] = pending

    def _form(self, pending: _Pending) -> FormDefinition:
        # A stored record keeps the form version it was entered with; a new one takes the schedule's.
        if pending.existing is None:
            return self.project.event_forms[(pending.rc_event.event.pk, pending.form_name)].form
        form_id = pending.existing.form_id
        if form_id not in self.forms:
            self.forms[form_id] = FormDefinition.objects.get(pk=form_id)
        return self.forms[form_id]

    def _write(self) -> None:
        writes = []
        for p in self.pending.values():
            if p.instance < 1:
                self.errors.append(f'"{p.rid}","{INSTANCE_COL}","{p.instance}","must be 1 or more"')
                continue
            form = self._form(p)
            validator = self.validators.get(form.pk)
            if validator is None:
                validator = self.validators[form.pk] = FormValidator(form)
            clean, problems = validator.clean(
                p.values,
                missing_codes=self.missing_codes,
                complete=p.status == Status.COMPLETE,
                events=other_events(p.subject, form, exclude=p.existing, compiled_form=validator.compiled),
            )
            for field_name, message in problems.items():
                self.errors.append(f'"{p.rid}","{field_name}","{_given(p.values, field_name)}","{message}"')
            if problems or record_service.is_unchanged(p.existing, clean, p.status):
                continue  # unchanged records are not written (write_records would skip them too)
            writes.append(
                RecordWrite(
                    subject=p.subject,
                    event=p.rc_event.event,
                    form=form,
                    form_name=p.form_name,
                    instance=p.instance,
                    data=clean,
                    status=p.status,
                    existing_id=p.existing.pk if p.existing else None,
                    existing_version=p.existing.version if p.existing else None,
                )
            )
        self.pending = {}
        if not writes or self.errors:
            return  # once a row is refused nothing will be kept: check the rest, write no more
        try:
            write_records(actor=self.user, study=self.study, writes=writes, reason=IMPORT_REASON)
        except record_service.RecordLockedError as exc:
            rid = exc.record.subject.subject_id if exc.record is not None else ""
            self.errors.append(f'"{rid}","{exc.record.form_name if exc.record else ""}","","{exc}"')
        except (ValidationError, PermissionDenied) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.errors.append(f'"","","","{message}"')


def _copy_values(data: dict) -> dict:
    # Only repeating-group rows are changed in place by an import; other values are replaced whole.
    return {
        k: copy.deepcopy(v) if isinstance(v, list) and v and isinstance(v[0], dict) else v
        for k, v in data.items()
    }


def _given(values: dict, field_name: str) -> str:
    value = values.get(field_name.split("[")[0], "")
    return value if isinstance(value, str) else json.dumps(value)


# ----------------------------------------------------------------------------- delete


def delete_records(user, study, project: Project, p: Params) -> HttpResponse:
    return_format = p.choice("returnFormat", ("json", "csv", "xml"), "xml")
    _require(user, study, DELETE_PERMISSION, "You do not have Delete Record privileges")
    wanted = p.items("records")
    if not wanted:
        raise RedcapError("No records were specified to delete: send records[0]=<id>.")
    subjects = {
        s.subject_id: s for s in access.subjects_visible_to(user, study).filter(subject_id__in=wanted)
    }
    missing = [rid for rid in wanted if rid not in subjects]
    if missing:
        raise RedcapError(
            "One or more of the records provided cannot be deleted because they do not exist in the project. "
            f"The following records do not exist: {', '.join(missing)}"
        )
    instrument, event, instance, arm = (
        p.get("instrument"),
        p.get("event"),
        p.get("repeat_instance"),
        p.get("arm"),
    )
    if instrument and instrument not in project.instruments:
        raise RedcapError(f'The instrument "{instrument}" is not an instrument of this project.')
    if event and event not in project.events_by_name:
        raise RedcapError(f'The event "{event}" is not an event of this project.')
    deleted = 0
    with transaction.atomic():
        for rid in wanted:
            records = FormRecord.objects.filter(subject=subjects[rid]).select_related(
                "subject__study", "subject__site"
            )
            if instrument:
                records = records.filter(form_name=instrument)
            if event:
                records = records.filter(event=project.events_by_name[event].event)
            if arm:
                records = records.filter(
                    event__arm__order=int(arm) - 1 if arm.isascii() and arm.isdigit() else -1
                )
            if instance:
                records = records.filter(
                    instance=int(instance) if instance.isascii() and instance.isdigit() else 0
                )
            found = False
            for record in records:
                try:
                    delete_record(actor=user, record=record, reason="REDCap API delete")
                except record_service.RecordLockedError as exc:
                    raise RedcapError(str(exc)) from None
                found = True
            deleted += found
    return render.value_response(return_format, deleted)
