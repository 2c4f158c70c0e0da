"""Finding studies on a DICOMweb server (QIDO-RS) and linking them, through dicomweb-client.

Servers are configured, never typed by users (so a form cannot make Capture call an arbitrary
address): `CAPTURE["DICOMWEB_SERVERS"]` = {name: base URL}, or the environment variable
`CAPTURE_DICOMWEB_SERVERS="orthanc=https://pacs.example.org/dicom-web,..."`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from capture.audit.services import record_event
from capture.env import env_list
from capture.studies.models import Study, Subject

from . import services
from .models import ImagingStudy, SourceIdentifier

STUDY_FIELDS = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "AccessionNumber"]
SERIES_FIELDS = [
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "NumberOfSeriesRelatedInstances",
]


def servers() -> dict[str, str]:
    configured = settings.CAPTURE.get("DICOMWEB_SERVERS")
    if configured is not None:
        return dict(configured)
    found = {}
    for entry in env_list("CAPTURE_DICOMWEB_SERVERS", []):
        name, sep, url = entry.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ImproperlyConfigured(
                f"CAPTURE_DICOMWEB_SERVERS entry {entry!r}: write name=https://host/dicom-web, comma-separated."
            )
        found[name.strip()] = url.strip()
    return found


def server_url(name: str) -> str:
    known = servers()
    if name not in known:
        choices = ", ".join(known) or "none configured (set CAPTURE_DICOMWEB_SERVERS)"
        raise ValidationError(f"Unknown DICOMweb server {name!r}; choose one of: {choices}.")
    return known[name]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def query(url: str, *, patient_id: str | None = None) -> list[tuple[Dataset, list[Dataset]]]:
    """QIDO-RS: the studies (of one patient, or all) with their series, as pydicom datasets."""
    client = DICOMwebClient(url=url, timeout=30)
    # A busy archive gets three tries, 0.2 s and 0.4 s apart; a web request should not hang for long.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
    filters = {"PatientID": patient_id} if patient_id else None
    try:
        studies = client.search_for_studies(search_filters=filters, fields=STUDY_FIELDS, get_remaining=True)
        found = []
        for raw in studies:
            study = Dataset.from_json(raw)
            series = client.search_for_series(
                study_instance_uid=str(study.StudyInstanceUID), fields=SERIES_FIELDS, get_remaining=True
            )
            found.append((study, [Dataset.from_json(s) for s in series]))
    except requests.RequestException as exc:
        raise ValidationError(
            f"The DICOMweb server at {url} did not answer the search ({exc.__class__.__name__}: {exc}). "
            "Check that it is running and that its address in CAPTURE_DICOMWEB_SERVERS is right."
        ) from None
    return found


def facts_from_qido(study: Study, found: list[tuple[Dataset, list[Dataset]]]) -> list[services.StudyFacts]:
    facts = []
    for qido_study, qido_series in found:
        patient = _text(qido_study, "PatientID")
        accession = _text(qido_study, "AccessionNumber")
        item = services.StudyFacts(
            study_uid=services.pseudonyms.remap_uid(study, _text(qido_study, "StudyInstanceUID")),
            patient_hash=services.pseudonyms.source_hash(study, patient) if patient else "",
            accession_hash=services.pseudonyms.source_hash(study, accession) if accession else "",
            date=services.parse_da(_text(qido_study, "StudyDate")),
            description=_text(qido_study, "StudyDescription")[:255],
            modalities={m for m in _text(qido_study, "ModalitiesInStudy").split("\\") if m},
            reported_instances=_int(qido_study, "NumberOfStudyRelatedInstances"),
        )
        item.instances.clear()
        for s in qido_series:
            if _text(s, "Modality").upper() == "SR":
                continue  # a structured report is measurements, not images: see _reports
            uid = services.pseudonyms.remap_uid(study, _text(s, "SeriesInstanceUID"))
            item.series[uid] = {
                "modality": _text(s, "Modality")[:16],
                "number": _int(s, "SeriesNumber"),
                "description": _text(s, "SeriesDescription")[:255],
                "body_part": _text(s, "BodyPartExamined")[:64],
                "manufacturer": _text(s, "Manufacturer")[:128],
                "model_name": _text(s, "ManufacturerModelName")[:128],
                "instance_count": _int(s, "NumberOfSeriesRelatedInstances"),
            }
            if item.series[uid]["modality"]:
                item.modalities.add(item.series[uid]["modality"])
            item.body_part = item.body_part or item.series[uid]["body_part"]
            item.manufacturer = item.manufacturer or item.series[uid]["manufacturer"]
            item.model_name = item.model_name or item.series[uid]["model_name"]
        facts.append(item)
    return facts


def link(*, actor, study: Study, server: str, subject: Subject | None = None, patient_id: str = "") -> dict:
    """With a subject and its PatientID: register the identifier (hash only) and link that
    patient's studies on the server. Without: index every study on the server, linking those
    whose PatientID hash names a subject and queueing the rest for a data manager."""
    services.require(actor, study)
    if subject is not None and not patient_id.strip():
        raise ValidationError(
            "Enter the subject's PatientID as the archive knows it (it is hashed, not stored)."
        )
    url = server_url(server)
    found = query(url, patient_id=patient_id.strip() or None)
    report = services.IngestReport()
    with transaction.atomic():
        if subject is not None:
            services.add_identifier(
                actor=actor, subject=subject, kind=SourceIdentifier.PATIENT_ID, value=patient_id
            )
        facts = facts_from_qido(study, found)
        services.save_facts(study, facts, ImagingStudy.DICOMWEB, url, report)
        record_event(
            actor=actor,
            study=study,
            action=services.INGEST,
            object_type="imaging",
            object_id=ImagingStudy.DICOMWEB,
            object_label=url[:255],
            after={
                "server": server,
                "subject": subject.subject_id if subject else None,
                "studies": len(facts),
            }
            | {k: v for k, v in report.as_dict().items() if k != "unreadable"},
        )
    report.measurements = _reports(actor, study, url, found, report)
    return {"server": server, "studies_found": len(found), **report.as_dict()}


def _reports(actor, study: Study, url: str, found, report: services.IngestReport) -> dict:
    """The structured reports (series of modality SR) among `found`, retrieved with WADO-RS into a
    temporary folder and read as measurement reports (capture/measurements/ingest.py)."""
    sr_series = [
        (_text(s, "StudyInstanceUID") or _text(st, "StudyInstanceUID"), _text(s, "SeriesInstanceUID"))
        for st, series in found
        for s in series
        if _text(s, "Modality").upper() == "SR"
    ]
    if not sr_series:
        return {}
    from capture.measurements.ingest import ingest_reports  # measurements build on imaging

    client = DICOMwebClient(url=url, timeout=30)
    with tempfile.TemporaryDirectory(prefix="capture-sr-") as tmp:
        dated: list[tuple[str, str]] = []
        try:
            for study_uid, series_uid in sr_series:
                for ds in client.retrieve_series(
                    study_instance_uid=study_uid, series_instance_uid=series_uid
                ):
                    dated.append((str(ds.get("StudyDate", "")) or "9", str(Path(tmp) / f"{len(dated)}.dcm")))
                    ds.save_as(dated[-1][1], enforce_file_format=True)
        except requests.RequestException as exc:
            raise ValidationError(
                f"The DICOMweb server at {url} did not send the measurement reports (WADO-RS, "
                f"{exc.__class__.__name__}: {exc}). Check that it is running, then link again."
            ) from None
        outcome = ingest_reports(
            actor=actor,
            study=study,
            paths=[path for _date, path in sorted(dated)],  # oldest first (a baseline before its follow-ups)
            source_kind=ImagingStudy.DICOMWEB,
            source=url,
        )
    report.unreadable.extend(outcome.refused)
    return outcome.as_dict()
