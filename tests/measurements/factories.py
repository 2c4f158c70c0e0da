"""Measurement data made through the ORM for the response tests (not through the SR ingest)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from capture.measurements import concepts
from capture.measurements.models import Lesion, Measurement, MeasurementReport

_uids = itertools.count(1)


def report(subject, day: int, *, event: str = "", supersedes=None) -> MeasurementReport:
    """A report read `day` days after the subject's enrolment (stored on the shifted calendar)."""
    real = subject.enrollment_date + dt.timedelta(days=day)
    return MeasurementReport.objects.create(
        study=subject.study,
        subject=subject,
        source_kind=MeasurementReport.SHEET,
        source="tests",
        sop_uid=f"sheet:test:{next(_uids)}",
        report_date=real + dt.timedelta(days=subject.date_shift_days),
        event=event,
        supersedes=supersedes,
    )


def lesion(subject, tracking_id: str, *, role: str = Lesion.UNDESIGNATED, node: bool = False, site="Liver"):
    return Lesion.objects.create(
        study=subject.study,
        subject=subject,
        tracking_id=tracking_id,
        is_node=node,
        role=role,
        site_meaning=site,
    )


def measure(rep, les, value, concept=concepts.LONG_AXIS, unit: str = "mm") -> Measurement:
    scheme, code, meaning = concept
    return Measurement.objects.create(
        report=rep,
        lesion=les,
        concept_scheme=scheme,
        concept_code=code,
        concept_meaning=meaning,
        value=Decimal(str(value)),
        unit=unit,
    )
