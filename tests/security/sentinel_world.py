"""A study whose secrets are sentinels, for tests/security/test_sentinel_crawl.py.

`build_world` seeds the shipped co-clinical study (crf_definitions/) through the services, as
real use would, and plants unique values where a de-identified reader must never see them:

- identifier items (elements flagged `identifier`): medical record numbers, dates of birth, the
  real DICOM StudyInstanceUID typed into the imaging form;
- DICOM free text (PS3.15 Annex E action X): StudyDescription, SeriesDescription, PatientName,
  PatientID, AccessionNumber of files ingested through the real ingest path;
- real dates: enrolment dates, every date and date-time held in a record, the acquisition date of
  a scan, and every system timestamp of the study's data (records, queries, signatures, locks,
  audit events...), re-dated to one day in March 2019 so it can be told apart from "now".

`Sentinels.find(text)` names every sentinel in a text, dates in the renderings people and
libraries use. `Sentinels.find_number(value)` also catches a date stored as a number (Stata/SAS/
Excel/epoch day counts) in a typed file. The world's subjects have fixed date shifts chosen so
that no shifted date or timestamp is ever one of the real ones (checked, not assumed:
`assert_shifted_world_is_disjoint`), so a hit is a leak, never a coincidence.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import dateformat
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from capture.accounts.system import SYSTEM
from capture.audit.models import GENESIS_HASH, AuditChain, AuditEvent
from capture.definitions.loader import load_definitions
from capture.definitions.models import EventForm, Schedule
from capture.demo import study as demo
from capture.imaging import services as imaging
from capture.imaging.ingest import ingest_folder
from capture.records import services as records
from capture.records.compiled import compiled
from capture.records.models import FormRecord, Status
from capture.studies import services
from capture.studies.models import Subject

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple"  # the PI signs with it

# ---------------------------------------------------------------------------- the planted values

MRN_A = "SNTL-MRN-7731"
MRN_A_TYPO = "SNTL-MRN-7713"  # the value first typed, corrected later: it lives on in the history
MRN_B = "SNTL-MRN-8842"
MRN_QUEUED = "SNTL-MRN-9904"  # PatientID of a scan nobody has claimed yet
ACCESSION = "SNTL-ACC-5512"
PATIENT_NAME = "SNTLNAME^JANE"
STUDY_DESCRIPTION = "SNTL-DESC DOE JANE MRN 7731"
SERIES_DESCRIPTION = "SNTL-SERIES DOE JANE"
QUEUED_DESCRIPTION = "SNTL-QDESC ROE RICHARD"
OBSERVER = "SNTLREADER^ANN"  # the Person Observer Name of the measurement reports: never stored
REAL_STUDY_UID = "1.2.826.0.1.3680043.8.498.77310017193102"  # the archive's UID, typed into a form
READER = "SNTL-READER DOE"  # a measurement report's observer: DICOM person text

DOB_A = dt.date(1931, 2, 17)
DOB_B = dt.date(1944, 11, 29)
ENROLLED_A = dt.date(2019, 3, 7)
ENROLLED_MODEL = dt.date(2019, 4, 4)
ENROLLED_B = dt.date(2021, 6, 15)
SCAN_A = dt.date(2019, 3, 5)  # baseline CT, two days before enrolment
SCAN_QUEUED = dt.date(2019, 3, 12)
# Every system timestamp of the study's data is moved here (noon UTC: one calendar day anywhere),
# a day no record holds, so a hit on it is a timestamp.
STAMP = dt.datetime(2019, 1, 23, 12, 0, tzinfo=dt.UTC)

# Fixed shifts (the service draws 0-364 days back; these are in that range). Each subject's real
# dates span about 210 days and its shift is larger than that, and subjects lie years apart, so
# no shifted date of anyone is a real date of anyone: checked in assert_shifted_world_is_disjoint.
SHIFTS = {"a": -300, "model": -310, "b": -320}

# Apps whose models hold a study's data: every DateTimeField of theirs is re-dated to STAMP.
STUDY_DATA_APPS = ("studies", "records", "audit", "imaging", "measurements")

# Date renderings searched for: ISO and DICOM, Django's defaults (DATE_FORMAT "N j, Y",
# SHORT_DATE_FORMAT "m/d/Y"), day-first and month-first numbers, month names long and short.
DATE_FORMATS = [
    "Y-m-d",
    "Ymd",
    "Y/m/d",
    "d/m/Y",
    "m/d/Y",
    "j/n/Y",
    "n/j/Y",
    "d.m.Y",
    "d-m-Y",
    "m-d-Y",
    "N j, Y",
    "F j, Y",
    "M j, Y",
    "M d, Y",
    "j F Y",
    "j M Y",
    "d M Y",
    "d-M-Y",
    "dMY",  # SAS's DATE9.
]
# Every shape the formats above write, lower case (texts are casefolded before the search).
DATE_SHAPES = "|".join(
    [
        r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}",  # 2019-03-07, 07/03/2019, 3/7/2019, 07.03.2019
        r"\d{8}",  # 20190307 (DICOM DA)
        r"[a-z]{3,9}\.? \d{1,2}, \d{4}",  # March 7, 2019 / Mar. 7, 2019
        r"\d{1,2}[ -][a-z]{3,9}\.?[ -]\d{4}",  # 7 March 2019 / 07-Mar-2019
        r"\d{2}[a-z]{3}\d{4}",  # 07mar2019 (SAS DATE9.)
    ]
)
EPOCHS = {"days since 1960 (Stata/SAS)": dt.date(1960, 1, 1), "days since 1970": dt.date(1970, 1, 1)}
EXCEL_EPOCH = dt.date(1899, 12, 30)


@dataclass
class Sentinels:
    """What must never reach a de-identified reader: text sentinels and real dates, each labelled."""

    texts: dict[str, str] = field(default_factory=dict)  # sentinel -> what it is
    dates: dict[dt.date, str] = field(default_factory=dict)  # real date -> what it is
    _pattern: re.Pattern | None = None
    _labels: dict[str, str] = field(default_factory=dict)
    _numbers: dict[float, str] = field(default_factory=dict)

    def add_text(self, value: str, label: str) -> None:
        self.texts.setdefault(value, label)
        self._pattern = None

    def add_date(self, value: dt.date, label: str) -> None:
        self.dates.setdefault(value, label)
        self._pattern = None

    def _compile(self) -> re.Pattern:
        # One pass per text: the text sentinels literally, and anything shaped like a date (every
        # shape DATE_FORMATS makes), looked up among the real dates' renderings. Far faster than
        # an alternation of every rendering, and a date in a new shape only needs a new format.
        if self._pattern is None:
            labels: dict[str, str] = {text.casefold(): label for text, label in self.texts.items()}
            for day, label in self.dates.items():
                for rendering in renderings(day):
                    labels.setdefault(rendering.casefold(), f"{label} ({day.isoformat()})")
            numbers = {}
            for day, label in self.dates.items():
                for name, epoch in EPOCHS.items():
                    numbers[float((day - epoch).days)] = f"{label} ({day.isoformat()}) as {name}"
                numbers[float((day - EXCEL_EPOCH).days)] = f"{label} ({day.isoformat()}) as an Excel serial"
            texts = "|".join(re.escape(t.casefold()) for t in sorted(self.texts, key=len, reverse=True))
            self._pattern = re.compile(f"{texts}|(?<![0-9])(?:{DATE_SHAPES})(?![0-9])")
            self._labels = labels
            self._numbers = numbers
        return self._pattern

    def find(self, text: str) -> Iterator[tuple[str, str]]:
        """(label, matched text) for every sentinel in `text`, case-insensitively."""
        pattern = self._compile()
        for match in pattern.finditer(text.casefold()):
            label = self._labels.get(match.group(0))
            if label is not None:
                yield label, match.group(0)

    def find_number(self, value) -> str | None:
        """The label of a real date kept as a day number (Stata/SAS/Excel/epoch days), if it is one."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        self._compile()
        return self._numbers.get(float(value))


def renderings(day: dt.date) -> set[str]:
    return {dateformat.format(day, fmt) for fmt in DATE_FORMATS}


# ---------------------------------------------------------------------------- the world


@dataclass
class World:
    study: object
    users: dict  # persona -> User
    subjects: dict  # "a" / "b" / "model" -> Subject
    records: list  # FormRecord
    queries: list
    imaging_studies: list
    sentinels: Sentinels
    extra: dict = field(default_factory=dict)  # what a test adds (jobs, tokens)


PERSONAS = {
    # persona -> (role, site codes)
    "admin": ("study_admin", []),
    "pi": ("pi", []),
    "data_manager": ("data_manager", []),
    "coordinator_a": ("coordinator", ["A"]),
    "statistician": ("statistician", []),
    "monitor": ("monitor", []),
}


def build_world(tmp_dir: Path) -> World:
    """Seed the sentinel study (see the module docstring); DICOM files are written under `tmp_dir`."""
    load_definitions([ROOT / "crf_definitions"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="qin_coclinical", version="1.1")
    User = get_user_model()  # noqa: N806 - Django's idiom
    users = {name: User.objects.create_user(username=f"sntl_{name}", password=PASSWORD) for name in PERSONAS}
    admin = users["admin"]
    study = services.create_study(actor=SYSTEM, slug="sentinel", name="Sentinel trial", schedule=schedule)
    sites = {
        code: services.add_site(actor=SYSTEM, study=study, code=code, name=f"Site {code}") for code in "AB"
    }
    for name, (role, codes) in PERSONAS.items():
        services.grant_role(
            actor=SYSTEM, study=study, user=users[name], role=role, sites=[sites[c] for c in codes]
        )

    a = services.enroll_subject(actor=admin, study=study, site=sites["A"], enrollment_date=ENROLLED_A)
    b = services.enroll_subject(actor=admin, study=study, site=sites["B"], enrollment_date=ENROLLED_B)
    model = services.enroll_subject(
        actor=admin,
        study=study,
        site=sites["A"],
        enrollment_date=ENROLLED_MODEL,
        kind=Subject.ANIMAL,
        derived_from=a,
        model_type="PDX",
    )
    subjects = {"a": a, "b": b, "model": model}
    for key, subject in subjects.items():
        Subject.objects.filter(pk=subject.pk).update(date_shift_days=SHIFTS[key])
        subject.refresh_from_db()

    rng = random.Random(1931)  # noqa: S311 - test data
    for key, subject in subjects.items():
        _fill_every_form(subject, admin, rng, skip=SENTINEL_FORMS.get(key, ()))
    demographics = {"a": (MRN_A, DOB_A, ENROLLED_A), "b": (MRN_B, DOB_B, ENROLLED_B)}
    for key, (mrn, dob, enrolled) in demographics.items():
        subject = subjects[key]
        first = MRN_A_TYPO if key == "a" else mrn
        values = _generated(subject, "baseline", "demographics", rng) | {
            "medical_record_number": first,
            "date_of_birth": dob.isoformat(),
            "enrollment_date": enrolled.isoformat(),
        }
        record = _save(subject, admin, "baseline", "demographics", values, status=Status.UNVERIFIED)
        if key == "a":  # the correction: the typo stays in the record's history
            records.save_record(
                actor=admin,
                subject=subject,
                event_name="baseline",
                form_name="demographics",
                values={**record.data, "medical_record_number": MRN_A},
                status=Status.COMPLETE,
                expected_version=record.version,
                reason="MRN typo",
            )
    imaging_a = _generated(a, "baseline", "imaging_timepoint", rng) | {
        "scan_date": SCAN_A.isoformat(),
        "imaging_modality": "CT",
        "study_instance_uid": REAL_STUDY_UID,
    }
    _save(a, admin, "baseline", "imaging_timepoint", imaging_a)

    imaging_studies = _ingest_dicom(study, a, tmp_dir)
    _read_report(study, a)
    _measure(a, admin)

    demo_record = FormRecord.objects.get(subject=a, event__name="baseline", form_name="demographics")
    monitor = users["monitor"]
    queries = [
        records.open_query(
            actor=monitor, record=demo_record, field="medical_record_number", text="Please check the MRN."
        ),
        records.open_query(
            actor=monitor, record=demo_record, field="date_of_birth", text="Is the date of birth right?"
        ),
    ]
    weight_query = records.open_query(actor=monitor, record=demo_record, field="weight", text="Weight in lb?")
    records.answer_query(actor=users["coordinator_a"], query=weight_query, text="Checked: kilograms.")
    records.close_query(actor=monitor, query=weight_query, text="Thank you.")
    queries.append(weight_query)
    demo_record.refresh_from_db()
    records.sign_record(actor=users["pi"], record=demo_record, password=PASSWORD)
    records.set_subject_lock(actor=admin, subject=b, locked=True, reason="Database lock for the interim")

    sentinels = Sentinels()
    for text, label in [
        (MRN_A, "medical record number (identifier item) of subject A"),
        (MRN_A_TYPO, "earlier medical record number of subject A (identifier item history)"),
        (MRN_B, "medical record number (identifier item) of subject B"),
        (MRN_QUEUED, "DICOM PatientID of a queued scan"),
        (ACCESSION, "DICOM AccessionNumber"),
        ("SNTLNAME", "DICOM PatientName"),
        ("SNTLREADER", "observer name of a DICOM SR measurement report"),
        (STUDY_DESCRIPTION, "DICOM StudyDescription (Annex E action X)"),
        ("SNTL-DESC", "DICOM StudyDescription (Annex E action X), part"),
        (SERIES_DESCRIPTION, "DICOM SeriesDescription (Annex E action X)"),
        (QUEUED_DESCRIPTION, "DICOM StudyDescription of a queued scan"),
        (REAL_STUDY_UID, "real DICOM StudyInstanceUID (identifier item study_instance_uid)"),
        (READER, "observer of a measurement report (DICOM person text)"),
    ]:
        sentinels.add_text(text, label)
    sentinels.add_date(STAMP.date(), "real system timestamp (record saved, audit event, query...)")
    _collect_identifier_values(study, sentinels)
    _collect_real_dates(study, sentinels)
    redate_study_data(study)
    assert_shifted_world_is_disjoint(subjects.values(), sentinels)

    return World(
        study=study,
        users=users,
        subjects={k: Subject.objects.get(pk=s.pk) for k, s in subjects.items()},
        records=list(
            FormRecord.objects.filter(subject__study=study).select_related("subject", "event", "form")
        ),
        queries=queries,
        imaging_studies=imaging_studies,
        sentinels=sentinels,
    )


def _measure(subject: Subject, actor) -> None:
    """Issue 17: a target lesion of subject A read on the baseline scan's real date (a sentinel) and
    60 days later, so the lesions page and the timeline's responses show report dates."""
    from capture.measurements import designation
    from tests.measurements.factories import lesion, measure, report

    target = lesion(subject, "T1")
    measure(report(subject, (SCAN_A - ENROLLED_A).days, event="baseline"), target, 31)
    designation.designate(actor=actor, subject=subject, roles={target.pk: "target"})
    measure(report(subject, (SCAN_A - ENROLLED_A).days + 60, event="on_treatment"), target, 20)
    designation.compute.recompute_subject(subject)


def _generated(subject: Subject, event: str, form: str, rng: random.Random) -> dict:
    ef = EventForm.objects.select_related("event", "form").get(
        event__arm=subject.arm, event__name=event, form__name=form
    )
    return demo._values_for(ef.form, subject, ef.event.day, rng)


def _save(subject, actor, event: str, form: str, values: dict, status=Status.COMPLETE, instance: int = 1):
    """Save, dropping what a cross-field rule refused (as the demo seeder does)."""
    ef = EventForm.objects.select_related("form").get(
        event__arm=subject.arm, event__name=event, form__name=form
    )
    for attempt in range(4):
        try:
            return records.save_record(
                actor=actor,
                subject=subject,
                event_name=event,
                form_name=form,
                values=values,
                status=status,
                instance=instance,
            )
        except records.RecordValidationError as exc:
            if attempt == 3:
                raise
            values = demo._without_refused(ef.form, values, exc.field_errors)
            status = Status.INCOMPLETE
    raise AssertionError("unreachable")


# (event, form) records written with the sentinels, by subject, rather than generated.
SENTINEL_FORMS = {
    "a": {("baseline", "demographics"), ("baseline", "imaging_timepoint")},
    "b": {("baseline", "demographics")},
}


def _fill_every_form(subject: Subject, actor, rng: random.Random, skip) -> None:
    """A record of every form of every event of the subject's arm (two of a repeating one)."""
    for ef in EventForm.objects.filter(event__arm=subject.arm).select_related("event", "form"):
        if (ef.event.name, ef.form.name) in skip:
            continue
        for instance in range(1, 3 if ef.repeating else 2):
            values = demo._values_for(ef.form, subject, ef.event.day, rng)
            _save(subject, actor, ef.event.name, ef.form.name, values, instance=instance)


def _ingest_dicom(study, subject: Subject, tmp_dir: Path) -> list:
    """A CT of subject A (linked through its registered PatientID) and one nobody claimed yet."""
    imaging.add_identifier(actor=SYSTEM, subject=subject, kind="patient_id", value=MRN_A)
    folder = Path(tempfile.mkdtemp(prefix="dicom-", dir=tmp_dir))
    _write_dicom(folder / "a.dcm", MRN_A, SCAN_A, STUDY_DESCRIPTION, REAL_STUDY_UID)
    _write_dicom(folder / "queued.dcm", MRN_QUEUED, SCAN_QUEUED, QUEUED_DESCRIPTION, generate_uid())
    for name in ("a", "queued"):  # a measurement report read on each scan: one linked, one queued
        _write_report(folder / f"{name}-sr.dcm", folder / f"{name}.dcm")
    ingest_folder(actor=SYSTEM, study=study, path=folder, processes=1)
    found = list(study.imaging_studies.all())
    assert len(found) == 2 and sum(1 for s in found if s.subject_id == subject.pk) == 1, found
    return found


def _write_dicom(path: Path, patient_id: str, day: dt.date, description: str, study_uid: str) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = patient_id
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = DOB_A.strftime("%Y%m%d")
    ds.AccessionNumber = ACCESSION
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, keyword, day.strftime("%Y%m%d"))
    ds.StudyDescription = description
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path)


def _write_report(path: Path, image_path: Path) -> None:
    from tests.measurements import srfixtures

    image = pydicom.dcmread(image_path)
    group = srfixtures.lesion_group(image, "L1", srfixtures.LIVER, 30, None, uid=generate_uid())
    srfixtures.measurement_report(image, [group], seed=str(path), observer=OBSERVER).save_as(path)


_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def _dates_in(value) -> Iterator[dt.date]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _dates_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dates_in(v)
    elif isinstance(value, str) and (m := _ISO_DATE.match(value)):
        try:
            yield dt.date.fromisoformat(m.group(1))
        except ValueError:
            return


def _collect_identifier_values(study, sentinels: Sentinels) -> None:
    """Every value of an identifier item, whatever the form: a date also as the subject's shift
    would move it (an identifier is left out, not shifted). Short values are skipped (they
    would match by chance)."""
    for record in FormRecord.objects.filter(subject__study=study).select_related("subject", "form"):
        c = compiled(record.form)
        names = {i["name"] for i in c.items if c.elements[i["element"]].identifier}
        rows = [record.data] + [
            row for group in c.repeating for row in (record.data.get(group) or []) if isinstance(row, dict)
        ]
        for row in rows:
            for name in names & set(row):
                value, what = row[name], f"{name} (identifier item) of {record.subject.subject_id}"
                days = list(_dates_in(value))
                for day in days:
                    sentinels.add_date(day, what)
                    moved = day + dt.timedelta(days=record.subject.date_shift_days)
                    sentinels.add_date(moved, f"{what}, shifted")
                if not days and isinstance(value, str) and len(value) >= 8:
                    sentinels.add_text(value, what)


def _collect_real_dates(study, sentinels: Sentinels) -> None:
    """Every real date the database holds for the study's subjects."""
    for subject in study.subjects.all():
        sentinels.add_date(subject.enrollment_date, f"real enrolment date of {subject.subject_id}")
    for record in FormRecord.objects.filter(subject__study=study).select_related("subject", "event"):
        for day in _dates_in(record.data):
            sentinels.add_date(day, f"real date in a record of {record.subject.subject_id}")
    for row in study.imaging_studies.select_related("subject"):
        if row.real_date():
            sentinels.add_date(row.real_date(), "real acquisition date of a scan")
    for report in study.measurement_reports.exclude(subject=None).select_related("subject"):
        sentinels.add_date(report.real_date(), "real date of a measurement report")


def _read_report(study, subject: Subject) -> None:
    """A measurement report read on the baseline scan (its real date, its reader's name) for the
    measurement pages, API and export tables; _measure then computes the responses they show."""
    from decimal import Decimal

    from capture.measurements.store import Coded, IncomingReport, MeasuredValue, store_report

    value = MeasuredValue("L1", Coded("SCT", "103339001", "Long Axis"), Decimal("41"), "mm")
    incoming = IncomingReport(sop_uid="2.25.4242", date=SCAN_A, values=[value], observer=READER)
    store_report(
        actor=SYSTEM, study=study, subject=subject, incoming=incoming, source_kind="sr", source="sentinel"
    )


def _models_of(app_labels: Iterable[str]) -> Iterator[type[models.Model]]:
    for label in app_labels:
        yield from apps.get_app_config(label).get_models()


def redate_study_data(study) -> None:
    """Move every system timestamp of the study's data to STAMP (see the module docstring).

    Audit events are append-only through the ORM; the raw update here is the test standing in for
    "this was all entered in March 2019". The chains are re-hashed so they still verify."""
    for model in _models_of(STUDY_DATA_APPS):
        names = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, models.DateTimeField) and not (model is AuditEvent and f.name != "timestamp")
        ]
        if names:
            models.QuerySet(model).filter().update(**dict.fromkeys(names, STAMP))
    for head in AuditChain.objects.all():
        prev = GENESIS_HASH
        for event in AuditEvent.objects.filter(chain=head.key).order_by("seq"):
            event.prev_hash = prev
            event.hash = event.compute_hash()
            models.QuerySet(AuditEvent).filter(pk=event.pk).update(prev_hash=prev, hash=event.hash)
            prev = event.hash
        head.last_hash = prev
        head.save(update_fields=["last_hash"])


def assert_shifted_world_is_disjoint(subjects: Iterable[Subject], sentinels: Sentinels) -> None:
    """No shifted date (the de-identified world) may render like a real one: else a hit could be
    a coincidence rather than a leak. Fails loudly if someone changes the dates or shifts."""
    real = {r for day in sentinels.dates for r in renderings(day)}
    clashes = []
    for subject in subjects:
        for day in list(sentinels.dates):
            moved = day + dt.timedelta(days=subject.date_shift_days)
            if moved in sentinels.dates:
                clash = "shifted" not in sentinels.dates[moved]  # a planted shifted identifier is fine
            else:
                clash = bool(renderings(moved) & real)  # 03/07/2019 is both 7 March and 3 July
            if clash:
                clashes.append((subject.subject_id, day, moved))
    assert not clashes, (
        f"Shifted dates that equal (or render like) real ones: {clashes[:5]}. Choose other dates "
        "or shifts in tests/security/sentinel_world.py so the shifted world is disjoint."
    )
