"""`content=record&action=import`: REDCap rows (flat or EAV; JSON or CSV) into form records.

Rows are read as REDCap names them: the study's record id field (`record_id`, or a migrated
project's own, e.g. `study_id`), instrument names, unique event names, export field names. Values
follow REDCap's conventions: comma decimals for `*_comma_decimal` validations, checkbox columns
matched case-insensitively on the code, `<instrument>_complete` as the record's status,
`[instrument]_timestamp` and `redcap_survey_identifier` read but not imported (listed in
`Importer.not_imported`).

A record id the study does not have is a new subject when the study keeps its source's ids
(Study.subject_ids == "source") and the user may enrol: at the site of `redcap_data_access_group`
or the default site, in the arm of the row's event. `forceAutoNumber` gives new records the next
number (or the pattern's id in a study that generates ids). Everything is written through
`capture.records.bulk.write_records`, all rows or none; every problem is a `CellProblem` naming
row, record, column, value and why.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.http import HttpResponse

from capture.accounts.system import user_or_none
from capture.definitions.models import Arm, FormDefinition
from capture.records import services as record_service
from capture.records.bulk import (
    BLANK,
    MEMO_LIMIT,
    FormValidator,
    RecordWrite,
    collector_paused,
    write_records,
)
from capture.records.models import FormRecord, Query, Status
from capture.records.services import other_events
from capture.studies import access
from capture.studies import services as study_services
from capture.studies.models import Site, Study, Subject

from ..catalog import deidentified_for
from . import render
from .import_rows import (  # noqa: F401 - the row keys are this module's names too (migration reads them)
    CHECKBOX,
    DAG_COL,
    EVENT_COL,
    INSTANCE_COL,
    INSTRUMENT_COL,
    OTHER,
    PLAIN,
    ROW_KEYS,
    STATUS,
    SURVEY_COL,
    Cell,
    CellProblem,
    FormCells,
    Header,
    RowError,
    RowImport,
    comma_decimal,
    convert_date,
    parse_rows,
    read_header,
)
from .params import Params, RedcapError
from .project import FILE_MARK, Column, Project, RcEvent, dag_key, dag_name

IMPORT_REASON = "REDCap API import"
# How a column's values are put on a record (Importer.shape).
_PLAIN, _CHECKBOX, _STATUS, _OTHER = PLAIN, CHECKBOX, STATUS, OTHER
# Rows an import reads and writes at a time (inside its one transaction): they bound the server's
# memory, not the size of an import.
IMPORT_CHUNK = 5000


# ----------------------------------------------------------------------------- the API call


def import_records(user, study, project: Project, p: Params) -> HttpResponse:
    return_format = p.choice("returnFormat", ("json", "csv", "xml"), "xml")
    fmt = p.get("format", "xml").lower() or "xml"
    if fmt not in ("json", "csv", "xml"):
        raise RedcapError('The value of the parameter "format" is not valid: use json, csv or xml.')
    record_type = p.choice("type", ("flat", "eav"), "flat")
    overwrite = p.choice("overwriteBehavior", ("normal", "overwrite"), "normal") == "overwrite"
    return_content = p.choice("returnContent", ("count", "ids", "auto_ids", "nothing"), "count")
    date_format = p.choice("dateFormat", ("ymd", "mdy", "dmy"), "ymd")
    _require(user, study, "enter_data", "You do not have API Import/Update privileges")
    if deidentified_for(user, study):
        raise RedcapError("Your role sees de-identified data only, so it cannot import records.", status=403)
    if "data" not in p.data:
        raise RedcapError('The parameter "data" is missing: send the records to import.')
    auto_number = p.flag("forceAutoNumber")
    if auto_number and not access.can(user, "enroll_subject", study):
        raise RedcapError("forceAutoNumber creates records: your role may not enrol subjects.", status=403)
    rows = parse_rows(fmt, record_type, p.data.get("data", ""), project.record_id)
    importer = Importer(
        user, study, project, overwrite=overwrite, date_format=date_format, auto_number=auto_number
    )
    with transaction.atomic(), collector_paused():
        ids = importer.run(rows)
        if importer.problems:
            # Nothing is written unless every row is good (REDCap imports are all-or-nothing too).
            raise RedcapError("\n".join(str(problem) for problem in importer.problems))
    if return_content == "nothing":
        return render.value_response(return_format, {})
    if return_content == "ids":
        return render.value_response(return_format, [importer.new_ids.get(rid, rid) for rid in ids])
    if return_content == "auto_ids":
        return render.value_response(
            return_format, [f"{importer.new_ids.get(rid, rid)},{rid}" for rid in ids]
        )
    count = len(ids)
    return render.value_response(return_format, {"count": count} if return_format == "json" else count)


def _require(user, study, codename: str, message: str) -> None:
    if not access.can(user, codename, study):
        raise RedcapError(message, status=403)


def next_record_name(study: Study) -> str:
    """REDCap's generateNextRecordName: one more than the largest whole-number record id."""
    numbers = [
        int(s)
        for s in Subject.objects.filter(study=study).values_list("subject_id", flat=True)
        if s.isdigit()
    ]
    return str(max(numbers, default=0) + 1)


# ----------------------------------------------------------------------------- the importer


@dataclass
class _Pending:
    """One form record an import writes: its values so far, and the stored record (None: new)."""

    subject: Subject
    rc_event: RcEvent
    instrument: str
    instance: int
    existing: FormRecord | None
    values: dict
    status: int
    rid: str
    row: int


class Importer:
    """Applies an import's rows IMPORT_CHUNK at a time: one query reads the stored records of a
    chunk's subjects, the changed ones are validated as `save_record` validates (clean_record
    through bulk.FormValidator, the form compiled once, other events read when an expression names
    them) and written with `capture.records.bulk.write_records` (versions, locks, one audit event
    per record), all in the caller's transaction. Several rows for one record merge into one write."""

    def __init__(
        self,
        user,
        study,
        project: Project,
        *,
        overwrite: bool = False,
        date_format: str = "ymd",
        auto_number: bool = False,
        default_site: Site | None = None,
        reason: str = IMPORT_REASON,
        left_out: Iterable[str] = (),
    ):
        self.user, self.study, self.project = user, study, project
        self.overwrite, self.date_format, self.auto_number, self.reason = (
            overwrite,
            date_format,
            auto_number,
            reason,
        )
        self.subjects = {
            s.subject_id: s
            for s in access.subjects_visible_to(user, study).select_related("site", "arm", "study")
        }
        self.sites = {dag_key(site.code): site for site in access.sites_visible_to(user, study)}
        self.default_site = default_site
        self.missing_codes = study.missing_code_set()
        self.problems: list[CellProblem] = []
        self.warnings: list[CellProblem] = []  # values kept outside a soft range
        self.soft: dict[int, dict] = {}  # form pk -> the ranges checked as warnings only
        # Values kept outside a soft range, to query once written: (record key, field, question).
        self.flagged: list[tuple[tuple, str, str]] = []
        self.may_query = user_or_none(user) is not None and access.can(user, "verify_data", study)
        self.not_imported: dict[str, None] = {}  # columns read but not imported (timestamps, survey ids)
        self.new_ids: dict[str, str] = {}  # a row's record id -> the id given (forceAutoNumber)
        self.created: list[Subject] = []
        self.moved: dict[str, str] = {}
        self.trimmed: dict[
            str, int
        ] = {}  # column -> cells whose surrounding spaces were trimmed (not free text)  # record id -> the data access group an import row moved it to
        self.next_instance: dict[tuple, int] = {}
        self.stored: dict[tuple, FormRecord] = {}
        self.pending: dict[tuple, _Pending] = {}
        self.forms: dict[int, FormDefinition] = {}
        # The one validator (clean_record), the form compiled once: compiled() checks freshness with a query.
        self.validators: dict[int, FormValidator] = {}
        self.left_out = frozenset(left_out)  # columns the caller reads and reports, not to import
        self.headers: dict[tuple, Header] = {}  # how rows of each header are read (import_rows.read_header)
        self.shapes: dict[str, tuple] = {}  # column name -> how its values are put (shape)
        self.memos: dict[int, dict[str, tuple]] = {}  # form pk -> field -> (value -> outcome, cleaner)
        self.shared: dict[tuple, dict] = {}  # FormValidator.sharing_key -> value -> outcome

    def run(self, rows: Iterable[dict]) -> dict[str, None]:
        """Import every row; returns the record ids in order. Problems go to `problems`."""
        ids: dict[str, None] = {}
        numbered = enumerate(rows, start=1)
        while chunk := list(itertools.islice(numbered, IMPORT_CHUNK)):
            self._enrol_new(chunk)
            self._read_stored(row for _, row in chunk)
            for number, row in chunk:
                rid = str(row.get(self.project.record_id, "")).strip()
                try:
                    RowImport(self, row, number).apply()
                except RowError as exc:
                    self.problems.append(
                        CellProblem(number, rid, exc.column, exc.value, exc.message, exc.message)
                    )
                    continue
                except RedcapError as exc:
                    self.problems.append(CellProblem(number, rid, "", "", exc.message, exc.message))
                    continue
                ids.setdefault(rid, None)
            self._write()
        return ids

    def header_for(self, row: dict) -> Header:
        keys = tuple(row)
        header = self.headers.get(keys)
        if header is None:
            header = self.headers[keys] = read_header(self.project, keys, self.left_out)
            header.forms = [
                columns.split([self._shaped(cell) for cell in columns.cells], at_once=not self.overwrite)
                for columns in header.forms
            ]
        return header

    def _shaped(self, cell: Cell) -> Cell:
        shape = self.shape(cell.column)
        # Blank cells are put (to erase) only when the import overwrites: then every cell goes one by one.
        return cell._replace(shape=shape, plain=shape[1] is _PLAIN and not self.overwrite)

    def problem(self, row: int, rid: str, column: str, value: str, message: str) -> None:
        self.problems.append(CellProblem(row, rid, column, value, message))

    def _read_stored(self, rows: Iterable[dict]) -> None:
        wanted = {str(row.get(self.project.record_id, "")).strip() for row in rows}
        pks = [self.subjects[rid].pk for rid in wanted if rid in self.subjects]
        instrument_of = self.project.instrument_of
        self.stored = {
            (r.subject_id, r.event_id, instrument_of.get(r.form_name, r.form_name), r.instance): r
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

    # ------------------------------------------------------------------ subjects

    def subject_for(self, rid: str, row: dict, number: int) -> Subject:
        """The row's subject: known, or enrolled now when the study and the user allow it."""
        if self.auto_number:
            rid = self.new_ids.get(rid) or self._auto_id(rid, row, number)
        subject = self.subjects.get(rid)
        if subject is not None:
            return self._in_dag(subject, row, number) if row.get(DAG_COL) else subject
        if not self.study.keeps_source_ids:
            raise RedcapError(
                f'row {number}: record "{rid}" does not exist, or is at a site you do not see. This study generates '
                "its subject ids: enrol the subject first (or import with forceAutoNumber), then import its data."
            )
        return self._enrol(rid, row, number)

    def _in_dag(self, subject: Subject, row: dict, number: int) -> Subject:
        """A stored record whose row names another data access group moves to that site when the
        user may move subjects (studies.services.move_subject, audited with the import's reason);
        otherwise the row is refused. It is never left where it was without a word."""
        dag = row.get(DAG_COL, "").strip()
        site = self._site(row, number) if dag else subject.site
        if site.pk == subject.site_id:
            return subject
        rid = subject.subject_id
        if rid in self.moved:
            raise RowError(
                f'row {number}: an earlier row puts record "{rid}" in data access group "{self.moved[rid]}", '
                f'this one in "{dag}"; give one group per record.',
                DAG_COL,
                dag,
            )
        if not access.can(self.user, "manage_study", self.study):
            raise RowError(
                f'row {number}: record "{rid}" is in data access group "{dag_name(subject.site)}", not "{dag}"; '
                f"only a study administrator may move a record to another group. Fix: give its own group "
                f"(or leave {DAG_COL} blank) to import its data.",
                DAG_COL,
                dag,
            )
        try:
            study_services.move_subject(
                actor=self.user,
                study=self.study,
                subject=subject,
                site=site,
                reason=f"{self.reason}: {DAG_COL} {dag}",
            )
        except ValidationError as exc:
            raise RowError(f"row {number}: {' '.join(exc.messages)}", DAG_COL, dag) from None
        subject = Subject.objects.select_related("site", "arm", "study").get(pk=subject.pk)
        self.subjects[rid], self.moved[rid] = subject, dag
        return subject

    def _auto_id(self, given: str, row: dict, number: int) -> str:
        """forceAutoNumber: the next whole number (or the pattern's next id) for a new record."""
        if self.study.keeps_source_ids:
            new = next_record_name(self.study)  # counts the subjects enrolled so far, these included
            self._enrol(new, row, number)
        else:
            new = self._enrol(None, row, number).subject_id
        self.new_ids[given] = new
        return new

    def _enrol_new(self, chunk: list[tuple[int, dict]]) -> None:
        """Enrol the chunk's new record ids in one batch (`enroll_subjects`) before its rows are
        read. If the batch is refused nothing of it stays, and each row enrols its own subject as
        it comes (`_enrol`), so the refusal is reported on its row in the one-by-one words."""
        if self.auto_number or not self.study.keeps_source_ids:
            return
        requests: dict[str, study_services.EnrolRequest] = {}
        today = dt.date.today()  # noqa: DTZ011 - a calendar date, local to the site
        for number, row in chunk:
            rid = str(row.get(self.project.record_id, "")).strip()
            if not rid or rid in self.subjects or rid in requests:
                continue
            try:
                site, arm = self._site(row, number), self._arm(row)
            except (RowError, RedcapError):
                continue  # the row reports it
            requests[rid] = study_services.EnrolRequest(site, today, arm.subject_kind, arm, subject_id=rid)
        if not requests:
            return
        try:
            with transaction.atomic():
                subjects = study_services.enroll_subjects(
                    actor=self.user, study=self.study, requests=list(requests.values()), reason=self.reason
                )
        except (PermissionDenied, ValidationError):
            return
        for subject in subjects:
            self.subjects[subject.subject_id] = subject
            self.created.append(subject)

    def _arm(self, row: dict) -> Arm:
        """The arm a new record joins: that of the row's event (or of the project's first event)."""
        rc_event = (
            self.project.events_by_name.get(row.get(EVENT_COL, "").strip())
            if self.project.longitudinal
            else None
        )
        if rc_event is None:
            rc_event = self.project.events[0] if self.project.events else None
        if rc_event is None:
            raise RedcapError("The study's schedule has no events.")
        return rc_event.event.arm

    def _enrol(self, rid: str | None, row: dict, number: int) -> Subject:
        site = self._site(row, number)
        arm = self._arm(row)
        try:
            subject = study_services.enroll_subject(
                actor=self.user,
                study=self.study,
                site=site,
                enrollment_date=dt.date.today(),  # noqa: DTZ011 - a calendar date, local to the site
                kind=arm.subject_kind,
                arm=arm,
                reason=self.reason,
                subject_id=rid,
            )
        except PermissionDenied as exc:
            raise RowError(f"row {number}: {exc}", DAG_COL, site.code) from None
        except ValidationError as exc:
            message = " ".join(exc.messages)
            if rid is not None and Subject.objects.filter(study=self.study, subject_id=rid).exists():
                # Taken at a site this user does not see: say no more than REDCap does across DAGs.
                message = (
                    f'record "{rid}" cannot be created: the id is taken (perhaps at a site you do not see).'
                )
            raise RowError(f"row {number}: {message}", self.project.record_id, rid or "") from None
        subject = Subject.objects.select_related("site", "arm", "study").get(pk=subject.pk)
        self.subjects[subject.subject_id] = subject
        self.created.append(subject)
        return subject

    def _site(self, row: dict, number: int) -> Site:
        dag = row.get(DAG_COL, "").strip()
        if dag:
            site = self.sites.get(dag_key(dag))
            if site is None:
                raise RowError(
                    f'row {number}: data access group "{dag}" is not a site you see; use one of: '
                    f"{', '.join(sorted(dag_name(s) for s in self.sites.values()))}.",
                    DAG_COL,
                    dag,
                )
            return site
        if self.default_site is not None:
            return self.default_site
        if len(self.sites) == 1:
            return next(iter(self.sites.values()))
        raise RowError(
            f"row {number}: a new record needs its site: give {DAG_COL} (one of "
            f"{', '.join(sorted(dag_name(s) for s in self.sites.values())) or 'no site yet'}).",
            DAG_COL,
            "",
        )

    # ------------------------------------------------------------------ values

    def pending_for(
        self, key: tuple, subject, rc_event: RcEvent, instrument: str, instance: int, rid: str, row: int
    ) -> _Pending:
        """What the import has for the record at `key` (subject pk, event pk, instrument, instance)."""
        pending = self.pending.get(key)
        if pending is None:
            existing = self.stored.get(key)
            pending = _Pending(
                subject,
                rc_event,
                instrument,
                instance,
                existing,
                _copy_values(existing.data) if existing else {},
                existing.status if existing else 0,
                rid,
                row,
            )
        return pending

    def new_instance(self, subject, rc_event: RcEvent, instrument: str) -> int:
        """The next instance of a repeating instrument at an event, or of the whole event ("")."""
        key = (subject.pk, rc_event.event.pk, instrument)
        if key not in self.next_instance:
            names = [self.project.form_of[f] for f in ([instrument] if instrument else rc_event.form_names)]
            last = FormRecord.objects.filter(
                subject=subject, event=rc_event.event, form_name__in=names
            ).aggregate(m=Max("instance"))["m"]
            self.next_instance[key] = (last or 0) + 1
        instance = self.next_instance[key]
        self.next_instance[key] += 1
        return instance

    def apply(
        self,
        subject,
        rc_event: RcEvent,
        instrument: str,
        instance: int,
        cells: FormCells | None,
        rid: str,
        row: int,
    ) -> None:
        """Put one row's cells of one form record onto what the import has for it so far."""
        key = (subject.id, rc_event.event.id, instrument, instance)
        pending = self.pending_for(key, subject, rc_event, instrument, instance, rid, row)
        values = pending.values
        has_data = False
        if cells is not None:
            if cells.plain:  # non-blank values put as they are (Cell.plain)
                values.update(cells.plain)
                has_data = True
            for name, on, off in cells.checks:
                _mark(values, name, on, off)
                has_data = has_data or bool(on)
            has_data = self._put(pending, cells.others, row) or has_data
        if key in self.pending or pending.existing is not None or has_data:
            self.pending[key] = pending

    def _put(self, pending: _Pending, cells, row: int) -> bool:
        """Put the cells one by one (import_rows.FormCells.others); True when one of them is data."""
        has_data = False
        values = pending.values
        for (name, how), column, value in cells:  # (import_rows.Cell.shape, column, value)
            if how is _PLAIN and value:
                values[name] = value  # the common case of _value: a plain value
                has_data = True
            elif how is _CHECKBOX and value:
                has_data = self._check(values, name, column.code, value) or has_data
            elif how is _STATUS:  # <instrument>_complete
                has_data = self._status(pending, column, value, row) or has_data
            else:
                has_data = has_data or (value != "" and (not column.code or value != "0"))
                self._value(values, column, value)
        return has_data

    def _status(self, pending: _Pending, column: Column, value: str, row: int) -> bool:
        """Set the record's status from `<instrument>_complete`; True when it says there is data."""
        if value == "":
            return False
        if value not in ("0", "1", "2"):
            self.problem(row, pending.rid, column.name, value, "use 0, 1 or 2")
            return False
        pending.status = int(value)
        return pending.status != 0

    def shape(self, column: Column) -> tuple[str, str]:
        """(item, how its values are put: _PLAIN, _CHECKBOX, _STATUS or _OTHER) of a column, worked
        out once; _OTHER goes through _value (repeating groups, files, dates to convert, comma decimals)."""
        shape = self.shapes.get(column.name)
        if shape is None:
            f = column.field
            if f is None:
                how = _STATUS
            elif (
                f.group
                or f.datatype == "file"
                or (self.date_format != "ymd" and f.datatype in ("date", "datetime"))
            ):
                how = _OTHER
            elif f.multiple:
                how = _CHECKBOX
            elif f.datatype == "decimal" and comma_decimal(column):
                how = _OTHER
            else:
                how = _PLAIN
            shape = self.shapes[column.name] = (f.name if f is not None else "", how)
        return shape

    def _value(self, values: dict, column: Column, value: str) -> None:
        f = column.item
        if value in ("", FILE_MARK) and f.datatype == "file":
            return  # a file changes only through content=file; an exported "[document]" keeps it
        name, group, multiple = f.name, f.group, f.multiple
        if self.date_format != "ymd" and f.datatype in ("date", "datetime"):
            value = convert_date(value, "date", self.date_format)
        if f.datatype == "decimal" and comma_decimal(column):
            value = value.replace(",", ".")  # REDCap's number_comma_decimal: 1,54 is 1.54
        if group:
            group_rows = values.setdefault(group, [])
            while len(group_rows) < column.row:
                group_rows.append({})
            if value != "":
                group_rows[column.row - 1][name] = value
            elif self.overwrite:
                group_rows[column.row - 1].pop(name, None)
        elif multiple:
            values[name] = self._checked(values.get(name), column.code, value)
        elif value != "":
            values[name] = value
        elif self.overwrite:
            values.pop(name, None)

    def _check(self, values: dict, name: str, code: str, value: str) -> bool:
        """Put one checkbox column's mark on the field's codes; True when it checks the code. The
        marks of a flat export (1 and 0) are put here as _checked would put them, without a new
        list when nothing changes."""
        current = values.get(name)
        if value == "1":
            if type(current) is not list:
                values[name] = [code]
            elif code not in current:
                values[name] = sorted([*current, code])
            return True
        if value == "0":
            if type(current) is not list:
                values[name] = []
            elif code in current:
                values[name] = [c for c in current if c != code]
            return False
        values[name] = self._checked(current, code, value)
        return True  # "checked", "unchecked": a mark given, as "1" is (cells() counts it as data too)

    def _checked(self, current, code: str, value: str) -> list[str]:
        """A checkbox's codes with one column's mark applied (a new list when they change: the
        current one may be a stored record's)."""
        codes = current if isinstance(current, list) else []
        mark = value.lower()
        if mark in ("1", "checked"):
            return codes if code in codes else sorted([*codes, code])
        if mark in ("0", "unchecked") or (value == "" and self.overwrite):
            return [c for c in codes if c != code] if code in codes else codes
        return codes

    # ------------------------------------------------------------------ writing

    def _form(self, pending: _Pending) -> FormDefinition:
        # A stored record keeps the form version it was entered with; a new one takes the schedule's.
        if pending.existing is None:
            return self.project.event_forms[(pending.rc_event.event.id, pending.instrument)].form
        form_id = pending.existing.form_id
        if form_id not in self.forms:
            self.forms[form_id] = FormDefinition.objects.get(pk=form_id)
        return self.forms[form_id]

    def _validated(self, p: _Pending) -> RecordWrite | None:
        """The write of one pending record, or None (its problems reported, or it is unchanged)."""
        if p.instance < 1:
            self.problem(p.row, p.rid, INSTANCE_COL, str(p.instance), "must be 1 or more")
            return None
        form = self._form(p)
        validator = self.validators.get(form.id)
        if validator is None:
            validator = self.validators[form.id] = FormValidator(form)
            if self.study.keeps_source_ids:
                self.soft[form.id] = _soft_ranges(validator)
        events = other_events(p.subject, form, exclude=p.existing, compiled_form=validator.compiled)
        complete = p.status == Status.COMPLETE
        if p.existing is None and not validator.groups:
            clean, problems = self._clean_new(validator, p.values, complete, events)
        else:
            clean, problems = validator.clean(
                p.values, missing_codes=self.missing_codes, complete=complete, events=events
            )
            _keep_spaces(validator, p.values, clean)
        for field_name, message in problems.items():
            column = self.project.rc_names.get((p.instrument, field_name.split("[")[0]), field_name)
            self.problem(p.row, p.rid, column, _given(p.values, field_name), message)
        soft = self._soft_warnings(p, form, clean)
        if problems or record_service.is_unchanged(p.existing, clean, p.status):
            return None  # unchanged records are not written (write_records would skip them too)
        key = (p.subject.id, p.rc_event.event.id, self.project.form_of[p.instrument], p.instance)
        self.flagged.extend((key, field_name, text) for field_name, text in soft)
        return RecordWrite(
            subject=p.subject,
            event=p.rc_event.event,
            form=form,
            form_name=self.project.form_of[p.instrument],
            instance=p.instance,
            data=clean,
            status=p.status,
            existing_id=p.existing.pk if p.existing else None,
            existing_version=p.existing.version if p.existing else None,
        )

    def _soft_warnings(self, p: _Pending, form: FormDefinition, clean: dict) -> list[tuple[str, str]]:
        """Report each value kept outside a soft range; returns (field, query text) of each."""
        out = []
        for field_name, rule in self.soft.get(form.id, {}).items():
            outside = _outside(rule, clean.get(field_name))
            if not outside:
                continue
            column = self.project.rc_names.get((p.instrument, field_name), field_name)
            given = _given(p.values, field_name)
            follow = (
                "a data query asks to check it"
                if self.may_query
                else "no data query: your role may not raise queries"
            )
            self.warnings.append(CellProblem(p.row, p.rid, column, given, f"kept, {outside}; {follow}"))
            out.append(
                (field_name, f"The imported value {given} is {outside}: please check it against the source.")
            )
        return out

    def _clean_new(self, validator: FormValidator, values: dict, complete: bool, events) -> tuple[dict, dict]:
        """`validator.clean(values)` for a new record without repeating groups: each field's value
        cleaned by FormValidator.cleaner (clean_record's own `_clean_one`), each distinct value once
        per import for the fields that clean alike (FormValidator.sharing_key: its successes only,
        an error names its field), then `finish` (calculations, branching, `required`) as clean does."""
        memos = self.memos.setdefault(validator.form.id, {})
        clean: dict = {}
        errors: dict[str, str] = {}
        for name, raw in values.items():
            memo = memos.get(name) or self._memo(validator, name, memos)
            remembered, cleaner = memo
            if cleaner is None:
                continue  # calculated, or not an item of the form: finish() says so
            key = tuple(raw) if type(raw) is list else raw
            outcome = remembered.get(key)
            if outcome is None:
                outcome = cleaner(raw)
                if outcome[1] is None and len(remembered) < MEMO_LIMIT:
                    remembered[key] = outcome
            value, error = outcome
            if error is not None:
                errors[name] = error
            elif value is not BLANK:
                clean[name] = list(value) if type(value) is list else value
                if type(value) is str and value != raw and raw.strip() == value:
                    _keep_spaces(validator, {name: raw}, clean)
        return validator.finish(
            values, clean, errors, missing_codes=self.missing_codes, complete=complete, events=events
        )

    def _memo(self, validator: FormValidator, name: str, memos: dict) -> tuple:
        """(remembered outcomes, cleaner) of a field: shared by the fields that clean alike."""
        cleaner = validator.cleaner(name, missing_codes=self.missing_codes)
        shared = self.shared.setdefault(validator.sharing_key(name), {}) if cleaner is not None else {}
        memos[name] = (shared, cleaner)
        return memos[name]

    def _write(self) -> None:
        self.flagged = []
        writes = [w for w in map(self._validated, self.pending.values()) if w is not None]
        self.pending = {}
        if not writes or self.problems:
            return  # once a row is refused nothing will be kept: check the rest, write no more
        try:
            write_records(actor=self.user, study=self.study, writes=writes, reason=self.reason)
            self._raise_queries()
        except record_service.RecordLockedError as exc:
            rid = exc.record.subject.subject_id if exc.record is not None else ""
            form = self.project.instrument_of.get(exc.record.form_name, "") if exc.record else ""
            self.problem(0, rid, form, "", str(exc))
        except (ValidationError, PermissionDenied) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.problem(0, "", "", "", message)

    def _raise_queries(self) -> None:
        """A value kept outside a soft range gets a data query on its field once its record is
        written, opened by the importing user through records.services.open_query (which audits
        it); none when the user may not raise queries (the warning says so), none on a field that
        has one open already."""
        if not self.flagged or not self.may_query:
            return
        subjects = {key[0] for key, _, _ in self.flagged}
        records = {
            (r.subject_id, r.event_id, r.form_name, r.instance): r
            for r in FormRecord.objects.filter(subject_id__in=subjects).select_related(
                "subject__study", "subject__site", "form", "event"
            )
        }
        asked = set(
            Query.objects.filter(record__subject_id__in=subjects)
            .exclude(status=Query.CLOSED)
            .values_list("record_id", "field")
        )
        for key, field_name, text in self.flagged:
            record = records[key]
            if (record.pk, field_name) not in asked:
                record_service.open_query(actor=self.user, record=record, field=field_name, text=text)
                asked.add((record.pk, field_name))
        self.flagged = []


def _mark(values: dict, name: str, on: tuple[str, ...], off: tuple[str, ...]) -> None:
    """A checkbox field's codes with its columns' 1s (`on`) and 0s (`off`) put, as _checked would
    put them column by column: sorted when a code is added, the list unchanged when nothing is."""
    current = values.get(name)
    if type(current) is not list:
        values[name] = sorted(on)
        return
    kept = [code for code in current if code not in off] if off else current
    added = [code for code in on if code not in kept]
    if added:
        values[name] = sorted([*kept, *added])
    elif len(kept) != len(current):
        values[name] = kept


def _keep_spaces(validator: FormValidator, values: dict, clean: dict) -> None:
    """A text value keeps the spaces around it, as REDCap keeps them (the validator trims every
    value; an exported record must give back what REDCap exported). Only free text, and only
    within its maximum length; other values are trimmed (the importer counts them)."""
    rules = validator.compiled.rules
    for name, raw in values.items():
        rule = rules.get(name)
        if (
            type(raw) is str
            and rule is not None
            and rule.datatype == "text"
            and not rule.codes
            and not rule.multiple
            and clean.get(name) == raw.strip() != raw
            and not (rule.max_length and len(raw) > rule.max_length)
        ):
            clean[name] = raw


def _soft_ranges(validator: FormValidator) -> dict:
    """REDCap's ranges are soft (a value outside is kept, with a warning): a study that keeps
    REDCap's ids validates without them, on its own copy of the compiled form, and the importer
    reports what falls outside (and raises a data query on it: Importer._raise_queries). Returns the
    ranged rules by field name."""
    rules = validator.compiled.rules
    ranged = {name: rule for name, rule in rules.items() if rule.min_value or rule.max_value}
    if ranged:
        relaxed = {
            name: dataclasses.replace(rule, min_value="", max_value="") for name, rule in ranged.items()
        }
        validator.compiled = dataclasses.replace(validator.compiled, rules={**rules, **relaxed}, extras={})
    return ranged


def _outside(rule, value) -> str:
    """Why `value` is outside `rule`'s range ("" when inside, blank, or not comparable)."""
    if value is None or value == "" or isinstance(value, list):
        return ""
    try:
        if rule.datatype in ("integer", "decimal"):
            number = Decimal(str(value))
            low = Decimal(rule.min_value) if rule.min_value else None
            high = Decimal(rule.max_value) if rule.max_value else None
        else:
            return _beyond(rule, str(value), rule.min_value or None, rule.max_value or None)
    except (InvalidOperation, ValueError):
        return ""
    return _beyond(rule, number, low, high)


_Ordered = TypeVar("_Ordered", Decimal, str)


def _beyond(rule, value: _Ordered, low: _Ordered | None, high: _Ordered | None) -> str:
    """Why `value` is below `low` or above `high` (numbers as Decimals, other values as text)."""
    if low is not None and value < low:
        return f"below the minimum {rule.min_value} (REDCap's ranges are soft)"
    if high is not None and value > high:
        return f"above the maximum {rule.max_value} (REDCap's ranges are soft)"
    return ""


def _copy_values(data: dict) -> dict:
    # Only repeating-group rows are changed in place by an import; other values are replaced whole.
    return {
        k: copy.deepcopy(v) if isinstance(v, list) and v and isinstance(v[0], dict) else v
        for k, v in data.items()
    }


def _given(values: dict, field_name: str) -> str:
    value = values.get(field_name.split("[")[0], "")
    return value if isinstance(value, str) else json.dumps(value)
