"""`content=record`: export (flat / eav; json, csv, xml) and delete; import is record_import.py.

Export reads the records the token's user may see, de-identified when their role lacks
`view_identifiers` (identifier columns left out, dates shifted per subject), in REDCap's shape
(_RowShape: a row per event with data and per repeat instance). Delete goes through
`capture.records.services.delete_record`.

The flat export's steps are public because reports are made by them too (capture/reports/rows.py):
select_columns, row_filter, head_columns, export_rows with its ExportOptions, and header_label.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max, Min
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from capture.records import services as record_service
from capture.records.models import FormRecord
from capture.records.services import DELETE_PERMISSION, delete_record
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject

from ..catalog import present_data
from . import filter_logic, render, rights
from .params import Params, RedcapError
from .project import RECORD_ID, STATUS_LABELS, Column, Project, RcEvent, dag_name, label_value, raw_value

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


def select_columns(project: Project, fields: list[str], forms: list[str], deidentified: bool) -> list[Column]:
    """The data columns of `fields` and `forms` (all when both are empty), in the data dictionary's
    order, identifiers left out when `deidentified`; a name the study lacks is a RedcapError."""
    bad_fields = [
        f
        for f in fields
        if f != project.record_id and f not in project.fields_by_name and f not in project.columns
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
            named = column.name in fields or (column.field is not None and column.field_name in fields)
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


def row_filter(expression: str, missing_codes: set[str]):
    """A predicate on (row values, event values) for REDCap's filterLogic, in Capture's expression
    language with what filters add to it (filter_logic.py)."""
    ast = filter_logic.parse(expression)
    missing = frozenset(missing_codes)

    def keep(values: dict, events: dict) -> bool:
        return filter_logic.holds(ast, values, events, missing)

    return keep


def _cell_reader(project: Project, column: Column, options: ExportOptions):
    """A function (status, data) -> the column's text, chosen once per export, not once per cell."""
    labels, checkbox_label = options.labels, options.checkbox_label
    if column.is_complete:
        if labels:
            return lambda status, data: STATUS_LABELS[status]
        return lambda status, data: str(status)
    f = column.item
    decimal = options.decimal if f.datatype in ("integer", "decimal") else ""

    def text(value):
        shown = label_value(project, f, value) if labels else raw_value(f, value)
        # decimalCharacter: REDCap's "comma" or "dot" for every number, whatever the field's own.
        return shown.replace(",", ".").replace(".", decimal) if decimal else shown

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


# REDCap's csvDelimiter values and the character each stands for.
CSV_DELIMITERS = {",": ",", "comma": ",", "tab": "\t", ";": ";", "|": "|", "^": "^"}
DECIMALS = {"": "", "comma": ",", "dot": "."}


@dataclass(frozen=True)
class ExportOptions:
    """How one record export writes its cells (REDCap's export parameters)."""

    labels: bool = False
    checkbox_label: bool = False
    with_dag: bool = False
    blank_gray_status: bool = False
    decimal: str = ""
    delimiter: str = ","

    @classmethod
    def read(cls, p: Params, dag_limited: bool) -> ExportOptions:
        # rawOrLabel=both is accepted and answered raw: REDCap's API reads only "label" as labels.
        raw_or_label = p.choice("rawOrLabel", ("raw", "label", "both"), "raw")
        delimiter = p.data.get("csvDelimiter") or ","
        if delimiter.strip().lower() not in CSV_DELIMITERS and delimiter not in CSV_DELIMITERS:
            raise RedcapError(
                'The value of the parameter "csvDelimiter" is not valid: use one of , tab ; | ^.'
            )
        decimal = p.get("decimalCharacter").lower()
        if decimal not in DECIMALS:
            raise RedcapError('The value of the parameter "decimalCharacter" is not valid: use comma or dot.')
        return cls(
            labels=raw_or_label == "label",
            checkbox_label=p.flag("exportCheckboxLabel"),
            # A user limited to a data access group is not given the column (as REDCap).
            with_dag=p.flag("exportDataAccessGroups") and not dag_limited,
            blank_gray_status=p.flag("exportBlankForGrayFormStatus"),
            decimal=DECIMALS[decimal],
            delimiter=CSV_DELIMITERS.get(delimiter, CSV_DELIMITERS.get(delimiter.strip().lower(), ",")),
        )


def export_records(user, study, project: Project, p: Params) -> HttpResponseBase:
    fmt = p.choice("format", ("json", "csv", "xml"), "xml")
    record_type = p.choice("type", ("flat", "eav"), "flat")
    label_headers = p.choice("rawOrLabelHeaders", ("raw", "label"), "raw") == "label"
    level = rights.data_export_level(user, study)  # what content=user shows as data_export
    if level == rights.NO_ACCESS:
        raise RedcapError("You do not have Data Export privileges", status=403)
    options = ExportOptions.read(p, rights.in_a_dag(user, study))
    policy = Disclosure.for_user(user, study)
    deidentified = level == rights.DEIDENTIFIED
    columns = select_columns(project, p.items("fields"), p.items("forms"), deidentified)
    events = p.items("events")
    bad_events = [e for e in events if e not in project.events_by_name]
    if bad_events:
        raise RedcapError(
            f'The following values in the parameter "events" are not valid: {", ".join(bad_events)}'
        )
    keep = row_filter(p.get("filterLogic"), set(project.missing_codes)) if p.get("filterLogic") else None
    begin = _parse_moment(p.get("dateRangeBegin"), "dateRangeBegin")
    end = _parse_moment(p.get("dateRangeEnd"), "dateRangeEnd")

    subjects = access.subjects_visible_to(user, study).select_related("site").order_by("subject_id")
    record_ids = p.items("records")
    if record_ids:
        subjects = subjects.filter(subject_id__in=record_ids)
    if begin or end:
        subjects = _changed_between(subjects, study, policy, begin, end)

    head = head_columns(project, with_dag=options.with_dag)
    names = head + [c.name for c in columns]
    rows = export_rows(
        project,
        list(subjects.only("pk", "subject_id", "arm_id", "date_shift_days", "site__code")),
        columns,
        events=events,
        keep=keep,
        deidentified=deidentified,
        options=options,
    )
    # Rows are made as they are sent (render.rows_stream): a whole study is never in memory at once.
    if record_type == "eav":
        return render.rows_stream(fmt, _eav(project, rows, columns, head), delimiter=options.delimiter)
    headers = None
    if label_headers and fmt == "csv":
        headers = [header_label(project, name) for name in names]
    return render.rows_stream(fmt, rows, names, headers, delimiter=options.delimiter)


def head_columns(project: Project, *, with_dag: bool = False) -> list[str]:
    """The columns before the data in a flat export: the record id, then the event, the repeat
    instrument and instance where the study has them, then the data access group when asked."""
    head = [project.record_id]
    if project.longitudinal:
        head.append(EVENT_COL)
    if project.has_repeating:
        head += [INSTRUMENT_COL, INSTANCE_COL]
    if with_dag:
        head.append(DAG_COL)
    return head


def export_rows(
    project: Project,
    subjects: list,
    columns: list[Column],
    *,
    events: list[str],
    keep,
    deidentified: bool,
    options: ExportOptions,
) -> Iterator[dict]:
    """The flat rows, subject by subject, their records read SUBJECT_CHUNK subjects at a time."""
    forms = {c.form for c in columns} or set(project.instruments)
    # filterLogic may read any item, so it needs every form's records, not only the exported ones.
    loaded = set(project.instruments) if keep else forms
    shape = _RowShape(
        project,
        [(c.name, c.form, _cell_reader(project, c, options), _unset_cell(c, options)) for c in columns],
        forms,
        events=events,
        keep=keep,
        labels=options.labels,
        with_dag=options.with_dag,
    )
    for start in range(0, len(subjects), SUBJECT_CHUNK):
        chunk = subjects[start : start + SUBJECT_CHUNK]
        by_subject = _read_records(project, chunk, loaded)
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
            yield from shape.subject_rows(subject, records)


def _unset_cell(column: Column, options: ExportOptions) -> bool:
    """True when the column has a value on its event's row though its form has no data: REDCap
    gives a gray form's status 0 (blank with exportBlankForGrayFormStatus) and its checkboxes 0."""
    if column.is_complete:
        return not options.blank_gray_status
    return bool(column.code)


def _read_records(project: Project, chunk: list, instruments: set[str]) -> dict[int, dict]:
    """subject pk -> {(event pk, instrument, instance): (status, data)} for the subjects of `chunk`."""
    by_subject: dict[int, dict] = defaultdict(dict)
    # Only what the rows need, as tuples: the form's spec (large JSON) stays in the database.
    fetched = FormRecord.objects.filter(
        subject_id__in=[s.pk for s in chunk], form_name__in=[project.form_of[i] for i in instruments]
    ).values_list("subject_id", "event_id", "form_name", "instance", "status", "data")
    for subject_pk, event_pk, form_name, instance, status, data in fetched:
        by_subject[subject_pk][(event_pk, project.instrument_of[form_name], instance)] = (status, data)
    return by_subject


class _RowShape:
    """How one export's rows are made from a subject's records: which rows (REDCap's: one per event
    with data, plus one per instance of a repeating instrument) and which cells."""

    def __init__(self, project: Project, readers: list, forms: set[str], *, events, keep, labels, with_dag):
        self.project, self.readers, self.forms = project, readers, forms
        self.events, self.keep, self.labels, self.with_dag = events, keep, labels, with_dag

    def subject_rows(self, subject, records: dict[tuple, tuple[int, dict]]) -> Iterator[dict]:
        """One subject's rows; `records` maps (event pk, instrument, instance) to (status, values as shown).
        In a study that keeps REDCap's ids, a record with no data is one row at its arm's first event."""
        project = self.project
        event_values = self._event_values(records) if self.keep else {}
        for rc_event in project.events:
            if rc_event.event.arm_id != subject.arm_id or (
                self.events and rc_event.unique_name not in self.events
            ):
                continue
            for instrument, instance, slot_forms in self._slots(rc_event, records):
                row = self._row(subject, rc_event, records, instrument, instance, slot_forms, event_values)
                if row is not None:
                    yield row
        first = project.first_event(subject.arm_id)
        # Only where ids come from REDCap: there a record exists without data (its record id is its
        # first value); a Capture-enrolled subject with no form yet has no row, as before.
        if records or first is None or self.keep is not None or not project.study.keeps_source_ids:
            return
        if not self.events or first.unique_name in self.events:
            plain = tuple(f for f in first.form_names if f not in first.repeating)
            row = self._row(subject, first, {}, "", 0, plain, {})
            if row is not None:  # always: without `keep` every slot makes a row
                yield row

    def _event_values(self, records: dict) -> dict:
        event_values = {}
        for rc_event in self.project.events:
            merged: dict = {}
            for form_name in rc_event.form_names:
                record = records.get((rc_event.event.pk, form_name, 1))
                if record is not None:
                    merged.update(record[1])
                    merged[f"{form_name}_complete"] = str(record[0])
            event_values[rc_event.unique_name] = event_values[rc_event.event.name] = merged
        return event_values

    def _slots(self, rc_event: RcEvent, records: dict) -> list[tuple[str, int, tuple[str, ...]]]:
        """(repeat instrument or "", instance or 0, the instruments of the row) of one event."""
        event_pk = rc_event.event.pk
        if rc_event.repeats:  # a repeating event: a row per instance, all its forms on it
            shown = tuple(f for f in rc_event.form_names if f in self.forms)
            instances = sorted({k[2] for k in records if k[0] == event_pk and k[1] in shown})
            return [("", n, rc_event.form_names) for n in instances]
        slots: list[tuple[str, int, tuple[str, ...]]] = []
        plain = tuple(f for f in rc_event.form_names if f not in rc_event.repeating)
        if any((event_pk, f, 1) in records for f in plain if f in self.forms):
            slots.append(("", 0, plain))
        for form_name in rc_event.form_names:
            if form_name in rc_event.repeating and form_name in self.forms:
                instances = sorted(k[2] for k in records if k[0] == event_pk and k[1] == form_name)
                slots.extend((form_name, n, (form_name,)) for n in instances)
        return slots

    def _row(self, subject, rc_event, records, instrument, instance, slot_forms, event_values) -> dict | None:
        project, event_pk = self.project, rc_event.event.pk
        present = {
            f: records[(event_pk, f, instance or 1)]
            for f in slot_forms
            if (event_pk, f, instance or 1) in records
        }
        if self.keep is not None:
            values: dict = filter_logic.row_values(
                project.record_id, subject.subject_id, rc_event.unique_name
            )
            for instrument_name, (status, data) in present.items():
                values.update(data)
                values[f"{instrument_name}_complete"] = str(status)
            if not self.keep(values, event_values):
                return None
        row: dict = {project.record_id: subject.subject_id}
        if project.longitudinal:
            row[EVENT_COL] = rc_event.unique_name
            if self.labels:
                row[EVENT_COL] = (
                    f"{rc_event.label} (Arm {rc_event.arm_num}: {rc_event.arm_name})"
                    if len(project.arms) > 1
                    else rc_event.label
                )
        if project.has_repeating:
            row[INSTRUMENT_COL] = (
                project.instruments[instrument].label if instrument and self.labels else instrument
            )
            row[INSTANCE_COL] = str(instance) if instance else ""
        if self.with_dag:
            row[DAG_COL] = dag_name(subject.site)
        for name, form_name, read, unset in self.readers:
            record = present.get(form_name)
            if record is not None:
                row[name] = read(*record)
            elif unset and form_name in slot_forms:
                # REDCap: on a row of its event, a form without data is "Incomplete" (0) and its
                # checkboxes unchecked (0), not blank.
                row[name] = read(0, {})
            else:
                row[name] = ""
        return row


def header_label(project: Project, name: str) -> str:
    """The column's header as REDCap writes it with rawOrLabelHeaders=label."""
    fixed = {
        project.record_id: "Subject ID",
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
        return f"{column.item.label} (choice={dict(column.item.codes)[column.code]})"
    if column.row:
        return f"{column.item.label} ({column.row})"
    return column.item.label


def _eav(project: Project, rows: Iterable[dict], columns: list[Column], head: list[str]) -> Iterator[dict]:
    for row in rows:
        base = {"record": row[project.record_id]}
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
                yield {**base, "field_name": column.field_name, "value": column.code}
                continue
            yield {**base, "field_name": column.name, "value": value}


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
                records = records.filter(form_name=project.form_of[instrument])
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
    # REDCap answers a delete with the bare number whatever returnFormat says (REDCapR reads it
    # with as.integer; PyCap's JSON decoding reads it as a number too).
    return HttpResponse(str(deleted), content_type=render.CONTENT_TYPES[return_format])
