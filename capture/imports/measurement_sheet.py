"""Importing a measurement sheet: every row checked, then every reading stored, or nothing.

A sheet (CSV, XLSX, XLS, ODS) has a row per measurement: subject, date or event, lesion id,
measurement, value, UCUM unit; optionally the finding site, a lymph-node flag and the reader. It
goes the spreadsheet import's way (the same readers, upload, job, report and annotated workbook):
the dry run names every bad cell (an unknown subject, an unknown measurement, a unit that is not
UCUM or does not fit the measurement, a value that is not a number, a date outside every event
window of the subject's arm, a duplicate row); only a sheet without problems is written, in one
transaction, through `capture.measurements.store.store_report` — the write path of DICOM SR too —
one report per subject and date.

A report's UID is `sheet:<file>:<subject>:<date>` where <file> is the first 16 hex digits of the
file's SHA-256, so importing the same file again (from the page or the command line, as the same
upload or a new one) finds its reports stored and changes nothing; <date> is the reading's date on
the subject's shifted calendar (the stored `report_date`), so the UID discloses no real date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from capture.audit.services import record_event
from capture.measurements import ingest
from capture.measurements.models import MeasurementReport
from capture.measurements.store import Coded, IncomingReport, MeasuredValue, event_for_day, store_report
from capture.measurements.vocabulary import MeasurementKind, known_names, measurement_kind, unit_problem
from capture.studies import access
from capture.studies.models import Study, Subject
from capture.studies.services import require_writable

from . import readers
from .mapping import BOOLEAN_CELLS, CellError, parse_date
from .measurement_mapping import TARGETS, SheetMapping
from .models import ImportUpload
from .report import ImportRefusedError, Plan, Problem, Progress, cell_text, no_progress
from .uploads import check_may_import

COMMIT = "import.commit"


@dataclass
class SheetRow:
    """One clean row: a measurement of a lesion of a subject on a date."""

    row: int
    subject: Subject
    date: dt.date  # the clinical (real) calendar
    value: MeasuredValue
    reader: str


@dataclass
class Reading:
    """The rows of one subject and date: one report."""

    subject: Subject
    date: dt.date
    rows: list[SheetRow] = field(default_factory=list)
    supersedes: MeasurementReport | None = None  # the reading of another sheet this one corrects

    @property
    def shifted(self) -> dt.date:
        return self.date + dt.timedelta(days=self.subject.date_shift_days)

    def sop_uid(self, key: str) -> str:
        # The date on the subject's shifted calendar: the UID is shown wherever a report is, and
        # must tell a de-identified reader nothing they may not see.
        return f"sheet:{key}:{self.subject.subject_id}:{self.shifted.isoformat()}"

    def values(self) -> set[tuple]:
        return {
            _value_key(r.value.tracking_id, r.value.concept, r.value.derivation, r.value.value, r.value.unit)
            for r in self.rows
        }


def _value_key(lesion: str, concept: Coded, derivation: str, value: Decimal, unit: str) -> tuple:
    return (lesion, concept.scheme, concept.code, derivation, value.normalize(), unit)


@dataclass
class SheetPlan:
    plan: Plan
    readings: list[Reading]
    key: str  # the file's key in report UIDs
    new: list[Reading] = field(default_factory=list)


def file_key(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def read(path: Path, mapping: SheetMapping, name: str = "") -> readers.Table:
    try:
        return readers.read_table(path, **mapping.reader_options())
    except readers.ReadError as exc:
        message = str(exc).replace(Path(path).name, name) if name else str(exc)
        raise ValidationError(message) from None


class _Rows:
    """Cleans the rows of a sheet against the study: a SheetRow, or a problem per bad cell."""

    def __init__(self, study: Study, actor, table: readers.Table, mapping: SheetMapping, plan: Plan):
        self.study = study
        self.table = table
        self.mapping = mapping
        self.plan = plan
        self.index = {
            key: table.column_index(getattr(mapping, key)) if getattr(mapping, key) else None
            for key in TARGETS
        }
        subjects = (
            access.subjects_visible_to(actor, study).select_related("arm").prefetch_related("arm__events")
        )
        self.subjects = {s.subject_id: s for s in subjects}
        self.seen: dict[tuple, int] = {}

    def problem(self, row: int | None, key: str | None, value, reason: str, severity: str = "error") -> None:
        index = self.index.get(key) if key else None
        letter = readers.column_letter(index) if index is not None else ""
        header = self.table.headers[index] if index is not None else ""
        self.plan.problems.append(
            Problem(row, letter, header, cell_text(value), reason, self.table.sheet, severity)
        )

    def cell(self, cells: list, key: str):
        index = self.index.get(key)
        return cells[index] if index is not None and index < len(cells) else None

    def clean(self, row: int, cells: list) -> SheetRow | None:
        """The row as a SheetRow; every bad cell of it is reported, so None then."""
        before = len(self.plan.problems)
        subject = self._subject(row, cells)
        date = self._date(row, cells, subject)
        kind = self._kind(row, cells)
        value = self._value(row, cells)
        unit = cell_text(self.cell(cells, "unit_column"))
        reason = unit_problem(unit, kind)
        if reason:
            self.problem(row, "unit_column", unit, reason)
        lesion = cell_text(self.cell(cells, "lesion_column"))
        if not lesion:
            self.problem(row, "lesion_column", "", "The lesion id is blank; give each lesion its id.")
        node = self._node(row, cells)
        if len(self.plan.problems) > before:
            return None
        assert subject is not None and date is not None and kind is not None and value is not None
        measured = MeasuredValue(
            tracking_id=lesion,
            concept=kind.concept,
            value=value,
            unit=unit,
            derivation=kind.derivation,
            site=_site(cell_text(self.cell(cells, "site_column"))),
            is_node=node,
        )
        reader = cell_text(self.cell(cells, "reader_column"))
        return self._unique(SheetRow(row, subject, date, measured, reader), kind)

    def _subject(self, row: int, cells: list) -> Subject | None:
        raw = self.cell(cells, "subject_column")
        subject_id = cell_text(raw)
        subject = self.subjects.get(subject_id)
        if subject is None:
            reason = (
                "The subject id is blank; fill it in or delete the row."
                if not subject_id
                else f"No subject {subject_id!r} in {self.study.name} at a site you can see. Enrol the "
                "subject first, or correct the id."
            )
            self.problem(row, "subject_column", raw, reason)
        return subject

    def _date(self, row: int, cells: list, subject: Subject | None) -> dt.date | None:
        """The reading's date: the date cell (in an event window of the subject's arm, the named
        event's when an event cell says which), or the named event's scheduled day."""
        raw_date = self.cell(cells, "date_column")
        label = cell_text(self.cell(cells, "event_column"))
        date = None
        if cell_text(raw_date):
            try:
                date = dt.date.fromisoformat(
                    parse_date(raw_date, self.mapping.date_format, self.mapping.pivot())
                )
            except CellError as exc:
                self.problem(row, "date_column", raw_date, f"{exc}.")
                return None
        elif not label:
            key = "date_column" if self.index["date_column"] is not None else "event_column"
            self.problem(row, key, "", "Neither a date nor an event: give the date the images were taken.")
            return None
        if subject is None:
            return date
        event = self._event(row, label, subject) if label else None
        if label and event is None:
            return None
        if date is None:
            return subject.enrollment_date + dt.timedelta(days=event.day)  # type: ignore[union-attr]  # the label named one
        return self._in_window(row, raw_date, date, subject, event)

    def _event(self, row: int, label: str, subject: Subject):
        events = list(subject.arm.events.all())
        found = next((e for e in events if label.casefold() in (e.name.casefold(), e.title.casefold())), None)
        if found is None:
            names = ", ".join(e.name for e in events)
            self.problem(
                row,
                "event_column",
                label,
                f"{subject.subject_id} (arm {subject.arm.name}) has no event {label!r}; its events: {names}.",
            )
        return found

    def _in_window(self, row: int, raw, date: dt.date, subject: Subject, event) -> dt.date | None:
        day = (date - subject.enrollment_date).days
        holding = event_for_day(subject, day)
        if holding and (event is None or holding == event.name):
            return date
        if event is not None:
            span = f"days {event.day - event.window_before} to {event.day + event.window_after}"
            reason = (
                f"{date} is day {day} of {subject.subject_id}, outside the window of {event.name} ({span})."
            )
        else:
            windows = "; ".join(
                f"{e.name} days {e.day - e.window_before} to {e.day + e.window_after}"
                for e in subject.arm.events.all()
            )
            reason = (
                f"{date} is day {day} of {subject.subject_id}: no event window of arm {subject.arm.name} holds it "
                f"({windows}). Correct the date, or name the event only."
            )
        self.problem(row, "date_column", raw, reason)
        return None

    def _kind(self, row: int, cells: list) -> MeasurementKind | None:
        text = cell_text(self.cell(cells, "type_column"))
        kind = measurement_kind(text) if text else None
        if kind is None:
            self.problem(
                row,
                "type_column",
                text,
                f"{text!r} is not a measurement Capture knows; use one of {known_names()}, or a code "
                "such as SCT:103339001."
                if text
                else "The measurement is blank.",
            )
        return kind

    def _value(self, row: int, cells: list) -> Decimal | None:
        raw = self.cell(cells, "value_column")
        text = cell_text(raw)
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if not text:
            self.problem(row, "value_column", raw, "The value is blank; give the measured number.")
            return None
        if value is None or not value.is_finite() or value < 0:
            reason = "is not a number" if value is None or not value.is_finite() else "is below zero"
            self.problem(
                row, "value_column", raw, f"{text!r} {reason}; a measurement is a number of 0 or more."
            )
            return None
        return value

    def _node(self, row: int, cells: list) -> bool:
        text = cell_text(self.cell(cells, "node_column")).lower()
        if text and text not in BOOLEAN_CELLS:
            self.problem(row, "node_column", text, f"{text!r} is not yes or no (1 or 0).")
        return BOOLEAN_CELLS.get(text, "0") == "1"

    def _unique(self, clean: SheetRow, kind: MeasurementKind) -> SheetRow | None:
        value = clean.value
        key = (clean.subject.pk, clean.date, value.tracking_id, value.concept, value.derivation)
        first = self.seen.setdefault(key, clean.row)
        if first == clean.row:
            return clean
        self.problem(
            clean.row,
            "lesion_column",
            value.tracking_id,
            f"Row {first} already gives {kind.title} of lesion {value.tracking_id} of {clean.subject.subject_id} "
            f"on {clean.date}; keep one of the two rows.",
        )
        return None


def _site(text: str) -> Coded | None:
    """A finding site as written: "Liver (SCT:10200004)", "SCT:10200004" or plain words."""
    if not text:
        return None
    head, _, rest = text.rpartition("(")
    coded = rest.rstrip(")") if head else text
    scheme, colon, code = coded.partition(":")
    if colon and scheme.strip().isalnum() and code.strip() and " " not in code.strip():
        return Coded(scheme.strip(), code.strip(), head.strip() or code.strip())
    return Coded("", "", text[:255])


def build_plan(
    *,
    actor,
    study: Study,
    table: readers.Table,
    mapping: SheetMapping,
    key: str,
    progress: Progress = no_progress,
) -> SheetPlan:
    """Clean every row, group the readings, and say which are new and which are stored. Writes nothing."""
    check_may_import(actor, study)
    plan = Plan(sheet=table.sheet, rows=len(table.rows))
    result = SheetPlan(plan, [], key)
    for needed in mapping.missing():
        plan.problems.append(Problem(None, "", "", "", f"Choose the column of the {needed}.", table.sheet))
    for target in TARGETS:
        header = getattr(mapping, target)
        if header and table.column_index(header) is None:
            plan.problems.append(
                Problem(
                    None,
                    "",
                    header,
                    "",
                    f"The sheet has no column {header!r} ({TARGETS[target][0]}).",
                    table.sheet,
                )
            )
    if not table.rows:
        plan.problems.append(
            Problem(None, "", "", "", "The sheet has no data rows below the header.", table.sheet)
        )
    if plan.errors:
        return result
    rows = _Rows(study, actor, table, mapping, plan)
    readings: dict[tuple, Reading] = {}
    for done, (number, cells) in enumerate(table.rows, 1):
        if done % 2000 == 0:
            progress(done, len(table.rows), f"Checking row {number}")
        clean = rows.clean(number, cells)
        if clean is not None:
            readings.setdefault(
                (clean.subject.pk, clean.date), Reading(clean.subject, clean.date)
            ).rows.append(clean)
    result.readings = list(readings.values())
    _check_readers(rows, result.readings)
    stored = set(
        MeasurementReport.objects.filter(
            study=study, sop_uid__in=[r.sop_uid(key) for r in result.readings]
        ).values_list("sop_uid", flat=True)
    )
    new = _corrections(plan, [r for r in result.readings if r.sop_uid(key) not in stored])
    # Oldest first per subject: a lesion first seen after a subject's first reading is a new lesion.
    result.new = sorted(new, key=lambda r: (r.subject.subject_id, r.date))
    plan.new, plan.unchanged = len(result.new), len(result.readings) - len(result.new)
    plan.details = [
        {
            "row": r.rows[0].row,
            "record": f"{r.subject.subject_id} / {r.date}",
            "kind": f"{len(r.rows)} measurement(s)",
        }
        for r in result.new
    ]
    return result


def _corrections(plan: Plan, readings: list[Reading]) -> list[Reading]:
    """The readings to store. One that another sheet already gave (same subject, date and reader)
    with the same values is not stored again (a re-saved file); with other values it is a
    correction: stored as superseding that reading, said in a warning."""
    out = []
    for reading in readings:
        earlier = (
            MeasurementReport.objects.filter(
                subject=reading.subject,
                source_kind=MeasurementReport.SHEET,
                report_date=reading.shifted,
                observer=reading.rows[0].reader[:128],
                superseded_by__isnull=True,
            )
            .prefetch_related("measurements__lesion")
            .first()
        )
        if earlier is None:
            out.append(reading)
            continue
        stored = {
            _value_key(
                m.lesion.tracking_id,
                Coded(m.concept_scheme, m.concept_code, ""),
                m.derivation,
                m.value,
                m.unit,
            )
            for m in earlier.measurements.all()
        }
        if stored == reading.values():
            continue
        reading.supersedes = earlier
        first = reading.rows[0]
        plan.problems.append(
            Problem(
                first.row,
                "",
                "",
                "",
                f"Corrects the reading of {reading.subject.subject_id} on {reading.date} imported from "
                f"{earlier.source}: both are kept, this one counts.",
                plan.sheet,
                "warning",
            )
        )
        out.append(reading)
    return out


def _check_readers(rows: _Rows, readings: list[Reading]) -> None:
    """One reading of a subject on a date has one reader."""
    for reading in readings:
        first = reading.rows[0]
        for other in reading.rows[1:]:
            if other.reader != first.reader:
                rows.problem(
                    other.row,
                    "reader_column",
                    other.reader,
                    f"Row {first.row} gives reader {first.reader!r} for {reading.subject.subject_id} on "
                    f"{reading.date}; one reading per subject and date has one reader.",
                )


def run_import(
    *,
    actor,
    study: Study,
    path: Path,
    mapping: SheetMapping,
    commit: bool,
    label: str = "",
    upload: ImportUpload | None = None,
    progress: Progress = no_progress,
) -> dict:
    """Dry run (commit=False) or import a measurement sheet; returns the report. A commit with any
    problem raises ImportRefusedError and writes nothing."""
    check_may_import(actor, study)
    require_writable(study, "import measurements")
    label = label or Path(path).name
    progress(0, None, "Reading the file")
    table = read(path, mapping, label)
    key = upload.sha256[:16] if upload is not None else file_key(path)
    found = build_plan(actor=actor, study=study, table=table, mapping=mapping, key=key, progress=progress)
    if not commit or found.plan.errors:
        report = _report(found.plan, committed=False)
        _remember(upload, report, mapping, ImportUpload.CHECKED)
        if commit:
            raise ImportRefusedError(report)
        return report
    progress(len(table.rows), len(table.rows), f"Storing {len(found.new)} reading(s)")
    try:
        report = _write(actor, study, found, label, upload)
    except ImportRefusedError as refused:  # a reading the store refused: its rows are in the report
        _remember(upload, refused.report, mapping, ImportUpload.CHECKED)
        raise
    _remember(upload, report, mapping, ImportUpload.COMMITTED)
    # Responses follow the measurements (as after an SR ingest): each subject the sheet gave a reading.
    ingest.recompute(
        {reading.subject.pk: reading.subject for reading in found.new if reading.subject}.values()
    )
    return report


def _report(plan: Plan, *, committed: bool) -> dict:
    report = plan.report(committed=committed)
    report["kind"] = ImportUpload.MEASUREMENTS
    return report


def _remember(upload: ImportUpload | None, report: dict, mapping: SheetMapping, state: str) -> None:
    if upload is not None:
        ImportUpload.objects.filter(pk=upload.pk).update(report=report, spec=mapping.to_spec(), state=state)


def _write(actor, study: Study, found: SheetPlan, label: str, upload: ImportUpload | None) -> dict:
    """Store every new reading in one transaction; a refusal of any leaves none stored."""
    try:
        with transaction.atomic():
            for reading in found.new:
                _store(actor, study, found.key, reading, label)
            report = _report(found.plan, committed=True)
            if found.new:
                record_event(
                    actor=actor,
                    study=study,
                    action=COMMIT,
                    object_type="import",
                    object_id=upload.pk if upload is not None else found.key,
                    object_label=label,
                    after={
                        "file": label,
                        "kind": "measurements",
                        "sheet": found.plan.sheet,
                        "counts": report["counts"],
                    },
                    reason=f"Import of {label}",
                )
    except _StoreRefusedError as refused:
        found.plan.problems.append(refused.problem)
        raise ImportRefusedError(_report(found.plan, committed=False)) from None
    return report


class _StoreRefusedError(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _store(actor, study: Study, key: str, reading: Reading, label: str) -> None:
    incoming = IncomingReport(
        sop_uid=reading.sop_uid(key),
        date=reading.date,
        values=[r.value for r in reading.rows],
        observer=reading.rows[0].reader[:128],
    )
    try:
        store_report(
            actor=actor,
            study=study,
            subject=reading.subject,
            incoming=incoming,
            source_kind=MeasurementReport.SHEET,
            source=label,
            supersedes=reading.supersedes,
        )
    except ValidationError as exc:
        rows = ", ".join(str(r.row) for r in reading.rows)
        raise _StoreRefusedError(
            Problem(reading.rows[0].row, "", "", "", f"Rows {rows} were not stored: {' '.join(exc.messages)}")
        ) from None
