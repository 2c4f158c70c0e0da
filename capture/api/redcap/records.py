"""`content=record`: export (flat / eav; json, csv, xml), import (json / csv) and delete.

Export reads the records the token's user may see, de-identified when their role lacks
`view_identifiers` (identifier columns left out, dates shifted per subject). Import writes
through `capture.records.services.save_record`, all rows or none. Delete goes through
`capture.api.services.delete_record`.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
from collections import defaultdict

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.http import HttpResponse
from django.utils import timezone

from capture.records import services as record_service
from capture.records.models import FormRecord
from capture.studies import access

from ..catalog import deidentified_for, present_data
from ..services import DELETE_PERMISSION, delete_record
from . import render
from .params import Params, RedcapError
from .project import RECORD_ID, STATUS_LABELS, Column, Project, label_value, raw_value

EVENT_COL = "redcap_event_name"
INSTRUMENT_COL = "redcap_repeat_instrument"
INSTANCE_COL = "redcap_repeat_instance"
DAG_COL = "redcap_data_access_group"
SPECIAL = {RECORD_ID, EVENT_COL, INSTRUMENT_COL, INSTANCE_COL, DAG_COL, "redcap_survey_identifier"}
IMPORT_REASON = "REDCap API import"


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


def _filter_logic(expression: str, missing_codes: set[str]):
    """A predicate on (row values, event values) for REDCap's filterLogic, in Capture's expression language."""
    from capture.definitions import expressions

    try:
        ast = expressions.parse(expression)
    except expressions.ExpressionError as exc:
        raise RedcapError(f"The filterLogic is not valid: {exc}") from None
    missing = frozenset(missing_codes)

    def keep(values: dict, events: dict) -> bool:
        return expressions.truthy(expressions.evaluate_ast(ast, values, events=events, missing_codes=missing))

    return keep


def _cell(
    project: Project, column: Column, record: FormRecord, data: dict, labels: bool, checkbox_label: bool
):
    if column.is_complete:
        return STATUS_LABELS[record.status] if labels else str(record.status)
    f = column.field
    if f.group:
        rows = data.get(f.group) or []
        value = rows[column.row - 1].get(f.name) if len(rows) >= column.row else None
    elif f.multiple:
        value = data.get(f.name)
        checked = isinstance(value, list) and column.code in value
        if not labels:
            return "1" if checked else "0"
        if checkbox_label:
            return dict(f.codes)[column.code] if checked else ""
        return "Checked" if checked else "Unchecked"
    else:
        value = data.get(f.name)
    return label_value(project, f, value) if labels else raw_value(f, value)


def export_records(user, study, project: Project, p: Params) -> HttpResponse:
    fmt = p.choice("format", ("json", "csv", "xml"), "xml")
    record_type = p.choice("type", ("flat", "eav"), "flat")
    labels = p.choice("rawOrLabel", ("raw", "label"), "raw") == "label"
    label_headers = p.choice("rawOrLabelHeaders", ("raw", "label"), "raw") == "label"
    checkbox_label = p.flag("exportCheckboxLabel")
    with_dag = p.flag("exportDataAccessGroups")
    deidentified = deidentified_for(user, study)
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
        changed = FormRecord.objects.filter(subject__in=subjects)
        if begin:
            changed = changed.filter(updated_at__gte=begin)
        if end:
            changed = changed.filter(updated_at__lte=end)
        subjects = subjects.filter(pk__in=changed.values("subject_id"))
    forms = {c.form for c in columns} or set(project.instruments)
    # filterLogic may read any item, so it needs every form's records, not only the exported ones.
    loaded = set(project.instruments) if keep else forms
    by_subject: dict[int, dict] = defaultdict(dict)
    # Only what the rows need: the form's spec (large JSON) stays in the database.
    fetched = FormRecord.objects.filter(subject__in=subjects, form_name__in=loaded).only(
        "pk", "subject_id", "event_id", "form_name", "instance", "status", "data"
    )
    for record in fetched.iterator(chunk_size=2000):
        by_subject[record.subject_id][(record.event_id, record.form_name, record.instance)] = record

    head = [RECORD_ID]
    if project.longitudinal:
        head.append(EVENT_COL)
    if project.has_repeating:
        head += [INSTRUMENT_COL, INSTANCE_COL]
    if with_dag:
        head.append(DAG_COL)
    names = head + [c.name for c in columns]

    rows: list[dict] = []
    for subject in subjects:
        records = by_subject.get(subject.pk, {})
        if not records:
            continue
        seen: dict[int, dict] = {}

        def data_of(record: FormRecord, subject=subject, seen=seen) -> dict:
            # The stored values as this user may see them (de-identified when the role says so).
            if record.pk not in seen:
                seen[record.pk] = present_data(
                    project.instruments[record.form_name].fields,
                    record.data,
                    deidentified=deidentified,
                    shift_days=subject.date_shift_days,
                )
            return seen[record.pk]

        event_values = {}
        if keep:
            for rc_event in project.events:
                merged: dict = {}
                for form_name in rc_event.form_names:
                    record = records.get((rc_event.event.pk, form_name, 1))
                    if record is not None:
                        merged.update(data_of(record))
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
                    for record in present.values():
                        values.update(data_of(record))
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
                for column in columns:
                    record = present.get(column.form)
                    row[column.name] = (
                        ""
                        if record is None
                        else _cell(project, column, record, data_of(record), labels, checkbox_label)
                    )
                rows.append(row)

    if record_type == "eav":
        return render.rows_response(fmt, _eav(project, rows, columns, head))
    headers = None
    if label_headers and fmt == "csv":
        headers = [_header_label(project, name) for name in names]
    return render.rows_response(fmt, rows, names, headers)


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


def _eav(project: Project, rows: list[dict], columns: list[Column], head: list[str]) -> list[dict]:
    out = []
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
                out.append({**base, "field_name": column.field.name, "value": column.code})
                continue
            out.append({**base, "field_name": column.name, "value": value})
    return out


# ----------------------------------------------------------------------------- import


def _parse_rows(fmt: str, record_type: str, text: str) -> list[dict]:
    if fmt == "json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RedcapError(f"The data are not valid JSON: {exc}") from None
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RedcapError("The data must be a JSON list of objects, one per row.")
    else:
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    rows = [
        {str(k).strip(): ("" if v is None else str(v)) for k, v in row.items() if k is not None}
        for row in rows
    ]
    if record_type == "eav":
        return _eav_to_flat(rows)
    return rows


def _eav_to_flat(rows: list[dict]) -> list[dict]:
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
    errors: list[str] = []
    ids: dict[str, None] = {}
    next_instance: dict[tuple, int] = {}
    with transaction.atomic():
        for number, row in enumerate(rows, start=1):
            try:
                _import_row(
                    project, user, subjects, row, overwrite, date_format, next_instance, errors, number
                )
            except RedcapError as exc:
                errors.append(exc.message)
                continue
            ids.setdefault(row.get(RECORD_ID, ""), None)
        if errors:
            # Nothing is written unless every row is good (REDCap imports are all-or-nothing too).
            raise RedcapError("\n".join(errors))
    if return_content == "nothing":
        return render.value_response(return_format, {})
    if return_content == "ids":
        return render.value_response(return_format, list(ids))
    if return_content == "auto_ids":
        return render.value_response(return_format, [f"{rid},{rid}" for rid in ids])
    count = len(ids)
    return render.value_response(return_format, {"count": count} if return_format == "json" else count)


def _import_row(project, user, subjects, row, overwrite, date_format, next_instance, errors, number):
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
            except ValueError:
                raise RedcapError(f'{where}: redcap_repeat_instance must be a number or "new".') from None
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
        _write(
            project,
            user,
            subject,
            rc_event,
            form_name,
            int(instance),
            cells.get(form_name, []),
            overwrite,
            date_format,
            errors,
            rid,
        )


def _write(
    project, user, subject, rc_event, form_name, instance, form_cells, overwrite, date_format, errors, rid
):
    existing = FormRecord.objects.filter(
        subject=subject, event=rc_event.event, form_name=form_name, instance=instance
    ).first()
    values = copy.deepcopy(existing.data) if existing else {}
    status = existing.status if existing else 0
    has_data = False
    for column, value in form_cells:
        if column.is_complete:
            if value != "":
                if value not in ("0", "1", "2"):
                    errors.append(f'"{rid}","{column.name}","{value}","use 0, 1 or 2"')
                    continue
                status = int(value)
                has_data = has_data or status != 0
            continue
        f = column.field
        has_data = has_data or _has_data(column, value)
        value = _convert_date(value, f.datatype, date_format)
        if f.group:
            rows = values.setdefault(f.group, [])
            while len(rows) < column.row:
                rows.append({})
            if value == "":
                if overwrite:
                    rows[column.row - 1].pop(f.name, None)
            else:
                rows[column.row - 1][f.name] = value
        elif f.multiple:
            current = values.get(f.name)
            codes = set(current) if isinstance(current, list) else set()
            if value.lower() in ("1", "checked"):
                codes.add(column.code)
            elif value.lower() in ("0", "unchecked") or (value == "" and overwrite):
                codes.discard(column.code)
            values[f.name] = sorted(codes)
        elif value == "":
            if overwrite:
                values.pop(f.name, None)
        else:
            values[f.name] = value
    if existing is None and not has_data:
        return
    try:
        record_service.save_record(
            actor=user,
            subject=subject,
            event_name=rc_event.event.name,
            form_name=form_name,
            values=values,
            status=status,
            instance=instance,
            expected_version=existing.version if existing else None,
            reason=IMPORT_REASON,
        )
    except record_service.RecordValidationError as exc:
        for field_name, message in exc.field_errors.items():
            errors.append(f'"{rid}","{field_name}","{_given(values, field_name)}","{message}"')
    except record_service.RecordLockedError as exc:
        errors.append(f'"{rid}","{form_name}","","{exc}"')
    except record_service.EditConflictError as exc:
        errors.append(f'"{rid}","{form_name}","","{exc}"')
    except (ValidationError, PermissionDenied) as exc:
        message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        errors.append(f'"{rid}","{form_name}","","{message}"')


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
                records = records.filter(event__arm__order=int(arm) - 1 if arm.isdigit() else -1)
            if instance:
                records = records.filter(instance=int(instance) if instance.isdigit() else 0)
            found = False
            for record in records:
                try:
                    delete_record(actor=user, record=record, reason="REDCap API delete")
                except record_service.RecordLockedError as exc:
                    raise RedcapError(str(exc)) from None
                found = True
            deleted += found
    return render.value_response(return_format, deleted)
