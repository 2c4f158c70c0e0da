"""Imaging measurements and responses as export tables (issue 17), from capture.measurements.

With `ExportSpec.measurements`, every layout gains three long tables that join the clinical
tables on subject id (and on event, like the long layout's rows):
- measurements: one row per measured value of a lesion in a report (DICOM SR or sheet);
- responses: one row per computed timepoint response (RECIST 1.1, mRECIST);
- best_responses: one row per subject and method.

De-identification is the export's (`Deidentifier`, from the disclosure policy): report dates are
stored on the subject's shifted calendar and shown shifted, as days since enrolment, or (identified
exports only) real; UIDs are the de-identified ones, remapped with re-hashed ids; a reader label is
DICOM person text, so only identified exports carry it. Coded columns carry their codes in the
codebook: measurement concepts (DCM, SCT), UCUM units and response categories (NCI Thesaurus).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from capture.measurements.models import (
    BestResponse,
    Lesion,
    Measurement,
    MeasurementReport,
    TimepointResponse,
)

from .columns import BOOLEAN_CODES, Batch, Column, NameBook, Table

UCUM_NAMES = {
    "mm": "millimetre",
    "cm": "centimetre",
    "mm2": "square millimetre",
    "cm2": "square centimetre",
    "mm3": "cubic millimetre",
    "cm3": "cubic centimetre",
    "mL": "millilitre",
    "ml": "millilitre",
    "1": "unity (a ratio)",
    "g/mL": "gram per millilitre",
    "g/ml": "gram per millilitre",
    "{SUVbw}g/mL": "SUV body weight, gram per millilitre",
    "{SUVbw}g/ml": "SUV body weight, gram per millilitre",
}
# Response categories with their NCI Thesaurus concepts (the codes CDISC's oncology response
# codelist uses); a category without a code here has none given rather than one guessed.
RESPONSE_CODES = (
    ("CR", "Complete response", "NCIt:C4870"),
    ("PR", "Partial response", "NCIt:C18213"),
    ("SD", "Stable disease", "NCIt:C18058"),
    ("NON-CR/NON-PD", "Non-CR/Non-PD", ""),
    ("PD", "Progressive disease", "NCIt:C35571"),
    ("NE", "Not evaluable", ""),
    ("mCR", "mRECIST complete response", ""),
    ("mPR", "mRECIST partial response", ""),
    ("mSD", "mRECIST stable disease", ""),
    ("mPD", "mRECIST progressive disease", ""),
)
METHOD_CODES = tuple((code, title, "") for code, title in TimepointResponse.METHODS)
ROLE_CODES = tuple((code, title, "") for code, title in Lesion.ROLES)
SOURCE_CODES = tuple((code, title, "") for code, title in MeasurementReport.SOURCE_KINDS)


def _codes(fixed: tuple, present) -> tuple:
    """`fixed` and any other value found in the data (its own meaning): a coded column must list
    every value it holds, or the statistical formats would lose it."""
    known = {code for code, _, _ in fixed}
    return fixed + tuple((v, v, "") for v in sorted(set(present) - known) if v)


def _coded(scheme: str, code: str) -> str | None:
    return f"{scheme}:{code}" if code else None


class MeasurementTables:
    """The measurement and response tables of one export (`builder`: its DatasetBuilder)."""

    def __init__(self, builder):
        self.builder = builder
        self.deid = builder.deid
        events = builder.spec.events
        self.events = set(events) if events else None

    def tables(self) -> list[Table]:
        return [self.measurements_table(), self.responses_table(), self.best_table()]

    # ------------------------------------------------------------------ helpers

    def _column(self, names: NameBook, name: str, label: str, datatype: str, **extra) -> Column:
        return Column(names.take(name), label, datatype, "imaging", key=name, **extra)

    def _when(self, names: NameBook, label: str) -> list[Column]:
        cols = [
            self._column(names, "event", "Event whose window holds the date", "text"),
            self._column(names, "day", f"{label}, days since enrolment", "days"),
        ]
        if self.deid.date_mode != "offset":
            cols.append(self._column(names, "date", label, "date", note=self.builder.planner.date_note()))
        return cols

    def _date(self, real: dt.date | None, subject):
        return None if real is None or self.deid.date_mode == "offset" else self.deid.date(real, subject)

    def _wanted(self, event: str) -> bool:
        return self.events is None or event in self.events

    def _rows(self, columns, chunk, rows_of) -> Batch:
        row = self.builder.cells.row
        rows = [row(columns, s, {}, None, None, extra) for s in chunk for extra in rows_of.get(s.pk, [])]
        return Batch.from_rows(rows, len(columns))

    # ------------------------------------------------------------------ measurements

    def measurements_table(self) -> Table:
        names = NameBook()
        builder = self.builder
        concepts = Measurement.objects.filter(report__study=builder.study).values_list(
            "concept_scheme", "concept_code", "concept_meaning"
        )
        # One entry per code: sources spell a concept's meaning differently ("Long Axis", "Long axis"),
        # and a codebook (ODM's CodeList above all) lists each coded value once.
        meanings: dict[str, str] = {}
        for scheme, code, meaning in concepts.distinct().order_by(
            "concept_scheme", "concept_code", "concept_meaning"
        ):
            meanings.setdefault(f"{scheme}:{code}", meaning)
        concept_codes = tuple((code, meaning, code) for code, meaning in sorted(meanings.items()))
        units = Measurement.objects.filter(report__study=builder.study).values_list("unit", flat=True)
        unit_codes = tuple((u, UCUM_NAMES.get(u, u), f"UCUM:{u}") for u in sorted(set(units.distinct())))
        uid_note = "remapped for this export" if self.deid.rehash_key else ""
        c = self._column
        columns = builder.planner.subject_columns(names, full=False) + self._when(names, "Report date")
        columns += [
            c(names, "lesion_id", "Lesion id (TID 1500 tracking identifier)", "text"),
            c(names, "lesion_uid", "Lesion tracking UID", "text", note=uid_note),
            c(names, "lesion_role", "Lesion role", "code", codes=ROLE_CODES),
            c(names, "lymph_node", "Lymph node (measured on its short axis)", "boolean", codes=BOOLEAN_CODES),
            c(names, "finding", "Finding", "text"),
            c(names, "finding_code", "Finding code (scheme:code)", "text"),
            c(names, "finding_site", "Finding site", "text"),
            c(names, "finding_site_code", "Finding site code (scheme:code)", "text"),
            c(names, "measurement", "Measurement (concept meaning)", "text"),
            c(names, "derivation", "Derivation (e.g. Maximum for SUVmax)", "text"),
            c(names, "concept", "Measurement concept (scheme:code)", "code", codes=concept_codes),
            c(names, "concept_scheme", "Coding scheme of the concept (DCM, SCT)", "text"),
            c(names, "concept_code", "Code of the concept", "text"),
            c(names, "value", "Value, in the unit of the row", "decimal"),
            c(names, "unit", "Unit (UCUM)", "code", codes=unit_codes),
            c(names, "source_kind", "Source of the report", "code", codes=SOURCE_CODES),
            c(names, "source_uid", "Source report UID (de-identified)", "text", note=uid_note),
            c(names, "series_uid", "Referenced series UID (de-identified)", "text", note=uid_note),
            c(names, "reader", "Reader label (identified exports only)", "text"),
            c(
                names,
                "current",
                "Current reading (not superseded by a correction)",
                "boolean",
                codes=BOOLEAN_CODES,
            ),
        ]

        def batches():
            for chunk in builder.selected_subject_chunks():
                yield self._rows(columns, chunk, self._measurement_rows(chunk))

        return Table("measurements", "Imaging measurements", columns, batches)

    def _measurement_rows(self, chunk) -> dict[int, list[dict]]:
        by_pk = {s.pk: s for s in chunk}
        query = (
            Measurement.objects.filter(report__subject__in=list(by_pk))
            .select_related("report", "lesion", "report__superseded_by")
            .order_by("report__subject_id", "report__report_date", "report_id", "lesion__tracking_id", "id")
        )
        out: dict[int, list[dict]] = defaultdict(list)
        for m in query:
            report, lesion = m.report, m.lesion
            subject = by_pk[report.subject_id]
            if not self._wanted(report.event):
                continue
            out[subject.pk].append(
                {**self._report_cells(report, subject), **self._lesion_cells(lesion), **self._value_cells(m)}
            )
        return out

    def _report_cells(self, report: MeasurementReport, subject) -> dict:
        uid = self.deid.uid
        current = not hasattr(report, "superseded_by")
        return {
            "event": report.event or None,
            "day": report.day_offset(),
            "date": self._date(report.real_date(), subject),
            "source_kind": report.source_kind,
            "source_uid": uid(report.sop_uid),
            "reader": self.deid.policy.dicom_text(report.observer) or None,
            "current": 1 if current else 0,
        }

    def _lesion_cells(self, lesion: Lesion) -> dict:
        return {
            "lesion_id": lesion.tracking_id,
            "lesion_uid": self.deid.uid(lesion.tracking_uid) or None,
            "lesion_role": lesion.role,
            "lymph_node": 1 if lesion.is_node else 0,
            "finding": lesion.finding_meaning or None,
            "finding_code": _coded(lesion.finding_scheme, lesion.finding_code),
            "finding_site": lesion.site_meaning or None,
            "finding_site_code": _coded(lesion.site_scheme, lesion.site_code),
        }

    def _value_cells(self, m: Measurement) -> dict:
        return {
            "measurement": m.concept_meaning,
            "derivation": m.derivation or None,
            "concept": f"{m.concept_scheme}:{m.concept_code}",
            "concept_scheme": m.concept_scheme,
            "concept_code": m.concept_code,
            "value": float(m.value),
            "unit": m.unit,
            "series_uid": self.deid.uid(m.referenced_series_uid) or None,
        }

    # ------------------------------------------------------------------ responses

    def responses_table(self) -> Table:
        names = NameBook()
        builder = self.builder
        present = TimepointResponse.objects.filter(study=builder.study)
        values = [
            v
            for f in ("target", "non_target", "overall")
            for v in present.values_list(f, flat=True).distinct()
        ]
        codes = _codes(RESPONSE_CODES, values)
        c = self._column
        columns = builder.planner.subject_columns(names, full=False) + [
            c(names, "method", "Response criteria", "code", codes=METHOD_CODES)
        ]
        columns += self._when(names, "Timepoint date")
        columns += [
            c(names, "baseline", "Baseline timepoint", "boolean", codes=BOOLEAN_CODES),
            c(names, "sum_mm", "Sum of diameters (mm; mRECIST: volume, mm3)", "decimal"),
            c(names, "nadir_mm", "Nadir: smallest sum so far (mm)", "decimal"),
            c(names, "change_from_baseline_pct", "Change from baseline (%)", "decimal"),
            c(names, "change_from_nadir_pct", "Change from nadir (%)", "decimal"),
            c(names, "target_response", "Target lesion response", "code", codes=codes),
            c(names, "non_target_response", "Non-target lesion response", "code", codes=codes),
            c(names, "new_lesions", "New lesions", "boolean", codes=BOOLEAN_CODES),
            c(names, "overall_response", "Overall timepoint response", "code", codes=codes),
            c(names, "source_uid", "Report the timepoint was read in (de-identified UID)", "text"),
        ]

        def batches():
            for chunk in builder.selected_subject_chunks():
                yield self._rows(columns, chunk, self._response_rows(chunk))

        return Table("responses", "Imaging responses per timepoint", columns, batches)

    def _response_rows(self, chunk) -> dict[int, list[dict]]:
        by_pk = {s.pk: s for s in chunk}
        query = (
            TimepointResponse.objects.filter(subject__in=list(by_pk))
            .select_related("report")
            .order_by("subject_id", "method", "day")
        )
        out: dict[int, list[dict]] = defaultdict(list)
        for r in query:
            subject = by_pk[r.subject_id]
            if not self._wanted(r.event):
                continue
            out[subject.pk].append(
                {
                    "method": r.method,
                    "event": r.event or None,
                    "day": r.day,
                    "date": self._date(subject.enrollment_date + dt.timedelta(days=r.day), subject),
                    "baseline": 1 if r.is_baseline else 0,
                    "sum_mm": _float(r.sum_mm),
                    "nadir_mm": _float(r.nadir_mm),
                    "change_from_baseline_pct": r.change_from_baseline_pct,
                    "change_from_nadir_pct": r.change_from_nadir_pct,
                    "target_response": r.target or None,
                    "non_target_response": r.non_target or None,
                    "new_lesions": 1 if r.new_lesions else 0,
                    "overall_response": r.overall or None,
                    "source_uid": self.deid.uid(r.report.sop_uid) if r.report else None,
                }
            )
        return out

    def best_table(self) -> Table:
        names = NameBook()
        builder = self.builder
        present = BestResponse.objects.filter(study=builder.study).values_list("response", flat=True)
        c = self._column
        columns = builder.planner.subject_columns(names, full=False) + [
            c(names, "method", "Response criteria", "code", codes=METHOD_CODES),
            c(
                names,
                "best_response",
                "Best overall response",
                "code",
                codes=_codes(RESPONSE_CODES, present.distinct()),
            ),
            c(names, "confirmed", "Confirmation rule applied", "boolean", codes=BOOLEAN_CODES),
            c(names, "best_response_pct", "mRECIST BestResponse (%)", "decimal"),
            c(names, "best_average_response_pct", "mRECIST BestAvgResponse (%)", "decimal"),
        ]

        def batches():
            for chunk in builder.selected_subject_chunks():
                yield self._rows(columns, chunk, self._best_rows(chunk))

        return Table("best_responses", "Best overall response per subject", columns, batches)

    def _best_rows(self, chunk) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = defaultdict(list)
        for b in BestResponse.objects.filter(subject__in=chunk).order_by("subject_id", "method"):
            out[b.subject_id].append(
                {
                    "method": b.method,
                    "best_response": b.response or None,
                    "confirmed": 1 if b.confirmed else 0,
                    "best_response_pct": b.best_response_pct,
                    "best_average_response_pct": b.best_average_response_pct,
                }
            )
        return out


def _float(value) -> float | None:
    return None if value is None else float(value)
