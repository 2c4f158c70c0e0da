"""Bulk enrolment from a sheet's id column, and the crosswalk that finds those subjects again
(issue 13, items 1 and 6).

With the mapping's `enrol` option, a row whose key (the subject column's cell) names no subject of
the study plans a new subject instead of a problem:
- its site comes from the mapping's site column (a site's code or name) or its default site, and
  only a site where the importer may enrol (`access.may_act_at_site(..., "enroll_subject", ...)`);
- its arm and kind are the first arm whose event collects the mapped forms (a patient sheet enrols
  patients into the patients' arm);
- its enrolment date comes from the mapping's date column, else it is the import date (the report
  says which);
- when the study keeps its source's ids the key becomes the subject id; when ids come from the
  pattern, the key is kept as a source identifier of the subject (only its keyed hash, as for
  DICOM PatientIDs: capture/imaging SourceIdentifier), so the next import of the same sheet finds
  the same subject (`Crosswalk`) and no de-identified page ever shows the key.

The plan holds each new subject as a `SubjectRef` with a negative pk; the commit enrols them inside
the import's transaction (`Enrolment.enrol`) before the records are written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from capture.definitions.models import Arm
from capture.imaging.models import SourceIdentifier
from capture.studies import access, pseudonyms
from capture.studies.models import Site, Study, Subject

from . import readers
from .columns import CellProblem, CellProblems
from .mapping import CellError, Mapping, parse_date
from .report import Problem, cell_text
from .structure import StudyForms, SubjectRef

SHOWN = 500  # new subjects listed in a report; the count is always whole
IMPORT_DATE = "the import date (no enrolment date column is mapped)"


class Crosswalk:
    """The study's source identifiers (hashes) of the subjects the importer can see: a sheet's key
    → its subject."""

    def __init__(self, study: Study, subjects: dict[str, SubjectRef]):
        self.study = study
        by_pk = {ref.pk: ref for ref in subjects.values()}
        self.by_hash: dict[str, SubjectRef] = {}
        self.hidden: set[str] = set()  # identifiers of subjects at sites the importer cannot see
        rows = SourceIdentifier.objects.filter(study=study).values_list("source_hash", "subject_id")
        for digest, pk in rows:
            if pk in by_pk:
                self.by_hash[digest] = by_pk[pk]
            else:
                self.hidden.add(digest)

    @classmethod
    def of(cls, actor, study: Study, subjects: dict[str, SubjectRef]) -> Crosswalk | None:
        """None for an importer who may not see identifiers: the link from a key to a subject id is
        itself identifying."""
        if actor is not None and not access.can(actor, "view_identifiers", study):
            return None
        if not SourceIdentifier.objects.filter(study=study).exists():
            return None
        return cls(study, subjects)

    def get(self, key: str) -> SubjectRef | None:
        """The subject the key is an identifier of; CellProblem when that subject is at a site the
        importer cannot see (it must not be enrolled twice, nor its records reached)."""
        try:
            digest = pseudonyms.source_hash(self.study, key)
        except ValueError:
            return None
        if digest in self.hidden:
            raise CellProblem(
                None,
                key,
                f"{key!r} is an identifier of a subject at a site you cannot see; leave the row out.",
            )
        return self.by_hash.get(digest)


@dataclass
class NewSubject:
    key: str
    row: int
    site: Site
    arm: Arm
    date: dt.date
    date_from_sheet: bool
    ref: SubjectRef


class Enrolment:
    """The subjects an import would enrol, planned row by row (see the module's docstring)."""

    def __init__(self, actor, study: Study, table: readers.Table, mapping: Mapping, arm: Arm):
        self.actor = actor
        self.study = study
        self.mapping = mapping
        self.arm = arm
        self.today = dt.date.today()  # noqa: DTZ011 - an enrolment date is a calendar date
        self.sites = {s.pk: s for s in Site.objects.filter(study=study)}
        self.site_names = {}
        for site in self.sites.values():
            self.site_names[site.code.lower()] = site
            self.site_names[site.name.lower()] = site
        self.site_index = table.column_index(mapping.site_column) if mapping.site_column else None
        self.date_index = (
            table.column_index(mapping.enrolment_date_column) if mapping.enrolment_date_column else None
        )
        self.default_site = self.site_names.get(mapping.site.lower()) if mapping.site else None
        self.taken = set(Subject.objects.filter(study=study).values_list("subject_id", flat=True))
        self.may_enrol: dict[int, bool] = {}
        self.planned: dict[str, NewSubject] = {}
        self.key_index = table.column_index(mapping.subject_column)

    # ------------------------------------------------------------------------------ resolve

    @classmethod
    def resolve(
        cls, actor, study: Study, table: readers.Table, mapping: Mapping, structure: StudyForms
    ) -> tuple[Enrolment | None, list[Problem]]:
        """The enrolment the mapping asks for, or None; with every problem of its options."""
        if not mapping.enrol:
            return None, []
        problems: list[Problem] = []

        def error(reason: str, header: str = "") -> None:
            index = table.column_index(header) if header else None
            letter = readers.column_letter(index) if index is not None else ""
            problems.append(Problem(None, letter, header, "", reason, table.sheet))

        arm = _arm_for(study, mapping, structure)
        if arm is None:
            error(
                "No arm of the study collects the mapped forms at the mapped event, so Capture cannot tell "
                "which kind of subject to enrol. Map the columns to one arm's forms."
            )
        for header, what in (
            (mapping.site_column, "site"),
            (mapping.enrolment_date_column, "enrolment date"),
        ):
            if header and table.column_index(header) is None:
                error(f"The {what} column {header!r} is not in the sheet.")
        if not mapping.site_column and not mapping.site:
            error("To enrol subjects, choose the column that names each subject's site, or a default site.")
        if mapping.site:
            site = Site.objects.filter(study=study, code=mapping.site).first()
            if site is None:
                error(f"The study has no site {mapping.site!r}.")
            elif actor is not None and not access.may_act_at_site(actor, "enroll_subject", study, site):
                error(f"You may not enrol subjects at site {site.code}; choose a site where you may.")
        if not study.keeps_source_ids:
            if mapping.key_kind not in dict(SourceIdentifier.KINDS):
                error(
                    f"Unknown identifier kind {mapping.key_kind!r}; use one of {', '.join(dict(SourceIdentifier.KINDS))}."
                )
            if actor is not None and not access.can(actor, "view_identifiers", study):
                error(
                    f"{study.name} generates its subject ids, so the sheet's ids would be kept as identifiers; "
                    "your role does not see identifiers. Ask a data manager to run this import."
                )
        if problems or arm is None:  # no arm is one of the problems
            return None, problems
        return cls(actor, study, table, mapping, arm), []

    # --------------------------------------------------------------------------------- rows

    def subject(self, key: str, cells: list, row: int) -> SubjectRef:
        """The new subject the row's key stands for (one per key, whatever the rows), or the
        CellProblem that stops it."""
        planned = self.planned.get(key)
        if planned is not None:
            return planned.ref
        if self.study.keeps_source_ids:
            if key in self.taken:
                raise CellProblem(
                    self.key_index,
                    key,
                    f"Subject {key!r} exists at a site you cannot see; it cannot be enrolled again.",
                )
            limit = Subject._meta.get_field("subject_id").max_length
            if limit is not None and len(key) > limit:
                raise CellProblem(self.key_index, key, "A subject id is at most 64 characters.")
        found: list[CellProblem] = []
        site: Site | None = None
        date: dt.date | None = None
        try:
            site = self._site(cells)
        except CellProblem as p:
            found.append(p)
        try:
            date, from_sheet = self._date(cells)
        except CellProblem as p:
            found.append(p)
        if found:
            raise CellProblems(found)
        assert site is not None and date is not None  # each was read, or its problem raised above
        ref = SubjectRef(
            -(len(self.planned) + 1),
            key if self.study.keeps_source_ids else f"(new) {key}",
            site.pk,
            self.arm.pk,
            self.study.pk,
            self.arm.name,
        )
        self.planned[key] = NewSubject(key, row, site, self.arm, date, from_sheet, ref)
        return ref

    def _site(self, cells: list) -> Site:
        site = self.default_site
        if self.site_index is not None:
            text = cell_text(cells[self.site_index])
            if text:
                site = self.site_names.get(text.lower())
                if site is None:
                    raise CellProblem(
                        self.site_index,
                        text,
                        f"No site {text!r} in {self.study.name}; its sites: "
                        f"{', '.join(s.code for s in self.sites.values())}.",
                    )
        if site is None:
            raise CellProblem(self.site_index, "", "The site is blank and no default site is chosen.")
        if site.pk not in self.may_enrol:
            self.may_enrol[site.pk] = self.actor is None or access.may_act_at_site(
                self.actor, "enroll_subject", self.study, site
            )
        if not self.may_enrol[site.pk]:
            raise CellProblem(self.site_index, site.code, f"You may not enrol subjects at site {site.code}.")
        return site

    def _date(self, cells: list) -> tuple[dt.date, bool]:
        if self.date_index is None:
            return self.today, False
        raw = cells[self.date_index]
        if cell_text(raw) == "":
            return self.today, False
        try:
            date = dt.date.fromisoformat(parse_date(raw, self.mapping.date_format, self.mapping.pivot()))
        except (CellError, ValueError) as exc:
            raise CellProblem(self.date_index, raw, f"Enrolment date: {exc}") from None
        if date > self.today + dt.timedelta(days=1):
            raise CellProblem(self.date_index, raw, "The enrolment date is in the future.")
        return date, True

    # ------------------------------------------------------------------------------- report

    def report(self) -> dict:
        subjects = list(self.planned.values())
        return {
            "count": len(subjects),
            "ids": "kept from the sheet"
            if self.study.keeps_source_ids
            else "generated by the study's pattern",
            "date": (
                "the enrolment date column, else the import date"
                if self.date_index is not None
                else IMPORT_DATE
            ),
            "subjects": [
                {
                    "row": s.row,
                    "key": s.key,
                    "subject_id": s.key if self.study.keeps_source_ids else "",
                    "site": s.site.code,
                    "arm": s.arm.name,
                    "date": s.date.isoformat(),
                    "date_from": "sheet" if s.date_from_sheet else "import date",
                }
                for s in subjects[:SHOWN]
            ],
        }

    # ------------------------------------------------------------------------------- commit

    def enrol(self, actor, reason: str) -> dict[int, SubjectRef]:
        """Enrol every planned subject (inside the caller's transaction): placeholder pk → subject."""
        from capture.imaging import services as imaging
        from capture.studies import services as studies

        made: dict[int, SubjectRef] = {}
        for planned in self.planned.values():
            subject = studies.enroll_subject(
                actor=actor,
                study=self.study,
                site=planned.site,
                enrollment_date=planned.date,
                kind=planned.arm.subject_kind,
                arm=planned.arm,
                reason=reason,
                subject_id=planned.key if self.study.keeps_source_ids else None,
            )
            if not self.study.keeps_source_ids:
                imaging.add_identifier(
                    actor=actor, subject=subject, kind=self.mapping.key_kind, value=planned.key
                )
            made[planned.ref.pk] = SubjectRef(
                subject.pk,
                subject.subject_id,
                subject.site_id,
                subject.arm_id,
                self.study.pk,
                planned.arm.name,
            )
        return made


def _arm_for(study: Study, mapping: Mapping, structure: StudyForms) -> Arm | None:
    """The first arm that collects the mapped forms at the mapped event (at any of its events with
    an event column)."""
    forms = {spec.form for spec in mapping.columns} | set(mapping.status_columns)
    where = {event.pk: (arm_pk, name) for (arm_pk, name), event in structure.events.items()}
    for arm in study.schedule.arms.order_by("pk"):
        collected = {
            form
            for (event_pk, form) in structure.event_forms
            if where[event_pk][0] == arm.pk and (not mapping.event or where[event_pk][1] == mapping.event)
        }
        if forms and forms <= collected:
            return arm
    return None
