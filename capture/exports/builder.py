"""The dataset builder: which subjects, which columns, and the rows, streamed in chunks.

`DatasetBuilder(study=, user=, spec=)` resolves the selection against the study's schedule
and what the user may see (capture.studies.access), applies the de-identification rules, and
exposes the export as tables. A table's `batches()` reads subjects in chunks (keyset
pagination) with their form records, so memory holds one chunk at a time whatever the size of
the study. Writers consume batches; nothing here knows about file formats.

The work is in small modules, in the order an export does it:
- selection.py: which events, forms and items (the spec checked against the schedule);
- subjects.py: which subjects (the user's, narrowed by site and id), in chunks;
- cohort.py: the cohort filter, on the values the export shows;
- reading.py: a chunk's form records, read and decoded;
- planning.py: the columns of each table;
- layouts.py: the wide, long and tidy tables and their batches;
- convert.py: stored values as cells.

De-identification (decided here, once, for every format, from the export's disclosure policy
`Disclosure.for_export`, capture/studies/disclosure.py):
- identifier-flagged items are left out unless the export is identified;
- dates are shifted by the subject's `date_shift_days`, or replaced by days since enrolment,
  or (identified only) kept;
- subject ids and imaging study UIDs may be replaced by an HMAC with a key made for this
  export and then forgotten, so two exports cannot be linked by id or UID;
- free-text items (text without permissible values) are left out on request;
- a cohort filter reads the values the policy shows, never stored ones (cohort.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from functools import cached_property

from capture.definitions.models import Event
from capture.studies.disclosure import Disclosure
from capture.studies.models import Study, Subject

from . import cohort as cohort_filter
from . import imaging, layouts, reading, selection, subjects
from .columns import Table
from .convert import Cells
from .deidentify import Deidentifier
from .measurements import MeasurementTables
from .planning import ColumnPlanner
from .spec import ExportSpec

CHUNK_SIZE = 500


class DatasetBuilder:
    def __init__(self, *, study: Study, user, spec: ExportSpec, chunk_size: int = CHUNK_SIZE):
        spec.check()
        self.study = study
        self.user = user
        self.spec = spec
        self.chunk_size = chunk_size
        self.missing_codes = frozenset(study.missing_code_set())
        # What the export may show: decided by the one disclosure policy, for an export whose
        # identified/de-identified choice the service has checked against the user's rights.
        self.policy = Disclosure.for_export(study, identified=spec.identified)
        self.deid = Deidentifier(
            policy=self.policy,
            date_mode=spec.date_mode,
            rehash_key=secrets.token_bytes(32) if spec.rehash_ids else None,
        )
        self.selection = selection.select(study, spec, self.deid)
        self.subjects = subjects.on_selected_arms(
            subjects.visible_subjects(user, study, spec), self.selection, spec
        )
        self.cohort = self._compile_cohort(spec.cohort) if spec.cohort else None
        self.imaging = imaging.ImagingColumns(self) if spec.imaging else None
        self.measurements = MeasurementTables(self) if spec.measurements else None
        self.planner = ColumnPlanner(self.selection, spec, self.deid)
        self.cells = Cells(self.missing_codes, self.deid)
        self.subject_total = self.subjects.count()
        self._tables: list[Table] | None = None

    @cached_property
    def event_names(self) -> dict[int, str]:
        """Event pk -> name, for every event of the schedule (a cohort filter may name any)."""
        return dict(Event.objects.filter(arm__schedule=self.study.schedule).values_list("pk", "name"))

    def _compile_cohort(self, expression: str):
        """The cohort predicate, on the values this export's policy shows (cohort.py says why)."""
        return cohort_filter.compile_cohort(
            expression,
            self.missing_codes,
            policy=self.policy,
            fields=cohort_filter.study_fields(self.study.schedule),
            event_names=set(self.event_names.values()),
            extra_names=cohort_filter.IMAGING_NAMES,
        )

    def tables(self) -> list[Table]:
        if self._tables is None:
            layout = self.spec.layout
            if layout == "wide":
                self._tables = [layouts.wide(self)]
            elif layout == "long":
                self._tables = [layouts.long(self)]
            else:
                self._tables = layouts.tidy(self)
            if self.imaging is not None and layout != "wide":
                self._tables.append(self.imaging.studies_table())
            if self.measurements is not None:  # long tables, in every layout
                self._tables += self.measurements.tables()
        return self._tables

    # ------------------------------------------------------------------ streaming

    def subject_chunks(self) -> Iterator[list[Subject]]:
        """Subjects in id order, a chunk at a time (before the cohort filter)."""
        return subjects.chunks(self.subjects, self.chunk_size)

    def selected_subject_chunks(self) -> Iterator[list[Subject]]:
        """Subject chunks after the cohort filter (which needs their records)."""
        if self.cohort is None:
            yield from self.subject_chunks()
            return
        for chunk, _records in self.record_chunks():
            yield chunk

    def record_chunks(self) -> Iterator[tuple[list[Subject], dict[int, dict]]]:
        """(subjects, records by subject pk → {(event id, form name, instance): (status, data)})."""
        # A cohort expression may name any item, so it reads every record of the subject.
        wanted = self.selection if self.cohort is None else None
        for chunk in self.subject_chunks():
            records = reading.by_subject(reading.record_query(chunk, wanted))
            yield self._kept(chunk, records), records

    def record_groups(self) -> Iterator[tuple[list[Subject], reading.Grouped]]:
        """(subjects, (event id, form name, instance) → (positions in the chunk, statuses, data)),
        positions ascending: the records of a chunk as a wide table reads them, column by column."""
        if self.cohort is not None:
            for chunk, records in self.record_chunks():
                yield chunk, reading.regroup(chunk, records)
            return
        for chunk in self.subject_chunks():
            yield chunk, reading.by_record(reading.record_query(chunk, self.selection), chunk)

    def _kept(self, chunk: list[Subject], records: dict[int, dict]) -> list[Subject]:
        """The subjects of `chunk` that the cohort filter keeps (all without one)."""
        if self.cohort is None:
            return chunk
        extra = self._cohort_imaging(chunk)
        return [s for s in chunk if self.cohort(s, records.get(s.pk, {}), self.event_names, extra.get(s.pk))]

    def _cohort_imaging(self, chunk) -> dict[int, dict]:
        summary = imaging.ImagingColumns(self).subject_values(chunk)
        return {
            pk: {
                "imaging_study_count": v["count"],
                "modality_count": len(v["modalities"].split("|")) if v["modalities"] else 0,
                "imaging_modalities": v["modalities"] or "",
            }
            for pk, v in summary.items()
        }
