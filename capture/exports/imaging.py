"""Imaging columns, from the imaging app's `capture.imaging.models.ImagingStudy`.

With `ExportSpec.imaging`, wide and tidy exports gain per-subject summaries and long/tidy
exports a table of imaging studies. Study dates arrive already shifted by the subject's date shift
(the imaging app applies the same shift as the clinical exports), so they are shown as days
since enrolment (always safe) and, in date-shift mode, as the shifted date itself. Study UIDs
are the imaging app's de-identified UIDs; with re-hashed ids each export remaps them with its
own key (`Deidentifier.uid`), so they do not join two exports either.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from capture.imaging.models import ImagingStudy

from .columns import Batch, Column, NameBook, Table


class ImagingColumns:
    """The imaging columns and table of one export (`builder`: its DatasetBuilder)."""

    def __init__(self, builder):
        self.builder = builder
        self.model = ImagingStudy

    def _studies(self, subjects):
        by_subject = defaultdict(list)
        query = self.model.objects.filter(study=self.builder.study, subject__in=subjects)
        for study in query.order_by("study_date", "study_uid"):
            by_subject[study.subject_id].append(study)
        return by_subject

    @staticmethod
    def _day(study, subject) -> int | None:
        # Stored dates are shifted; the subject's enrolment, shifted alike, is day 0.
        if study.study_date is None:
            return None
        return (
            study.study_date - (subject.enrollment_date + dt.timedelta(days=subject.date_shift_days))
        ).days

    def _date(self, study, subject):
        mode = self.builder.deid.date_mode
        if mode == "shift" or study.study_date is None:
            return study.study_date
        return study.study_date - dt.timedelta(days=subject.date_shift_days)  # identified: real date

    def _uid_note(self) -> str:
        return "remapped for this export" if self.builder.deid.rehash_key else ""

    def subject_columns(self, names: NameBook) -> list[Column]:
        return [
            Column(
                names.take("imaging_study_count"),
                "Number of imaging studies",
                "integer",
                "imaging",
                key="count",
            ),
            Column(
                names.take("imaging_modalities"),
                "Imaging modalities (all studies)",
                "text",
                "imaging",
                key="modalities",
            ),
            Column(
                names.take("imaging_first_day"),
                "First imaging study, days since enrolment",
                "days",
                "imaging",
                key="first_day",
            ),
            Column(
                names.take("imaging_last_day"),
                "Last imaging study, days since enrolment",
                "days",
                "imaging",
                key="last_day",
            ),
            Column(
                names.take("imaging_study_uids"),
                "De-identified study UIDs, | separated",
                "text",
                "imaging",
                key="uids",
                note=self._uid_note(),
            ),
        ]

    def subject_values(self, subjects) -> dict[int, dict]:
        # Plain values, not model instances: this runs for every chunk of a wide export.
        by_subject = defaultdict(list)
        query = (
            self.model.objects.filter(study=self.builder.study, subject__in=[s.pk for s in subjects])
            .order_by("study_date", "study_uid")
            .values_list("subject_id", "study_uid", "modalities", "study_date")
        )
        for subject_pk, uid, modalities, date in query:
            by_subject[subject_pk].append((uid, modalities, date))
        out = {}
        uid_of = self.builder.deid.uid
        for subject in subjects:
            mine = by_subject.get(subject.pk, [])
            enrolled = subject.enrollment_date + dt.timedelta(days=subject.date_shift_days)
            days = [(date - enrolled).days for _, _, date in mine if date is not None]
            modalities = sorted({m for _, listed, _ in mine for m in (listed or "").split(",") if m})
            out[subject.pk] = {
                "count": len(mine),
                "modalities": "|".join(modalities) or None,
                "first_day": min(days) if days else None,
                "last_day": max(days) if days else None,
                "uids": "|".join(uid_of(uid) for uid, _, _ in mine) or None,
            }
        return out

    def studies_table(self):
        names = NameBook()
        builder = self.builder
        columns = builder.planner.subject_columns(names, full=False) + [
            Column(
                names.take("study_uid"),
                "De-identified study UID",
                "text",
                "imaging",
                key="uid",
                note=self._uid_note(),
            ),
            Column(names.take("study_day"), "Study date, days since enrolment", "days", "imaging", key="day"),
            Column(names.take("modalities"), "Modalities, | separated", "text", "imaging", key="modalities"),
            Column(names.take("body_part"), "Body part examined", "text", "imaging", key="body_part"),
            Column(names.take("series_count"), "Number of series", "integer", "imaging", key="series_count"),
        ]
        if builder.deid.date_mode != "offset":
            columns.append(
                Column(
                    names.take("study_date"),
                    "Study date",
                    "date",
                    "imaging",
                    key="date",
                    note=builder.planner.date_note(),
                )
            )

        def batches():
            for chunk in builder.selected_subject_chunks():
                studies = self._studies(chunk)
                rows = []
                for subject in chunk:
                    for study in studies.get(subject.pk, []):
                        extra = {
                            "uid": builder.deid.uid(study.study_uid),
                            "day": self._day(study, subject),
                            "modalities": "|".join(study.modality_list) or None,
                            "body_part": study.body_part or None,
                            "series_count": study.series_count,
                            "date": self._date(study, subject),
                        }
                        rows.append(builder.cells.row(columns, subject, {}, None, None, extra))
                yield Batch.from_rows(rows, len(columns))

        return Table("imaging_studies", "Imaging studies", columns, batches)
