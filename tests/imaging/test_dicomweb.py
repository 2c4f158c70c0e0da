"""Linking studies found on a real Orthanc (DICOMweb plugin) started for the test session."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.imaging import dicomweb
from capture.imaging.models import ImagingStudy
from capture.studies import pseudonyms

from .conftest import add_pet, dicom_copy, upload_to_orthanc


@pytest.fixture(scope="session")
def archive(orthanc, tmp_path_factory):
    """Orthanc holding patient ORTH-1 (a CT study, and a PET/CT study of two series) and
    patient ORTH-2 (one MR study). Returns the DICOMweb base URL."""
    root = tmp_path_factory.mktemp("archive")
    files = [
        dicom_copy("CT_small.dcm", root / "1.dcm", patient_id="ORTH-1", study_date="20250301", study="o-ct"),
        dicom_copy("CT_small.dcm", root / "2.dcm", patient_id="ORTH-1", study_date="20250426", study="o-pet", series="ct"),
        dicom_copy("CT_small.dcm", root / "3.dcm", patient_id="ORTH-1", study_date="20250426", study="o-pet", series="pt"),
        dicom_copy("MR_small.dcm", root / "4.dcm", patient_id="ORTH-2", study_date="20250315", study="o-mr"),
    ]  # fmt: skip
    add_pet(files[2])
    for path in files:
        upload_to_orthanc(orthanc, path)
    return f"{orthanc}/dicom-web"


@pytest.fixture
def server(archive, settings):
    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"orthanc": archive}}
    return archive


def test_it_finds_a_subjects_studies_by_patient_id_and_links_them(server, study, subjects):
    result = dicomweb.link(
        actor=SYSTEM, study=study, server="orthanc", subject=subjects["a"], patient_id="ORTH-1"
    )
    assert (result["studies_found"], result["studies_new"], result["linked"]) == (2, 2, 2)
    pet = ImagingStudy.objects.get(subject=subjects["a"], series_count=2)
    assert set(pet.modality_list) == {"CT", "PT"}
    assert pet.instance_count == 2 and pet.source_kind == "dicomweb" and pet.source == server
    assert pet.patient_hash == pseudonyms.source_hash(study, "ORTH-1")
    assert pet.day_offset() == 56
    assert {s.modality for s in pet.series.all()} == {"CT", "PT"}


def test_linking_again_adds_nothing(server, study, subjects):
    dicomweb.link(actor=SYSTEM, study=study, server="orthanc", subject=subjects["a"], patient_id="ORTH-1")
    again = dicomweb.link(
        actor=SYSTEM, study=study, server="orthanc", subject=subjects["a"], patient_id="ORTH-1"
    )
    assert again["studies_new"] == 0 and again["series_new"] == 0
    assert ImagingStudy.objects.count() == 2


def test_a_whole_server_sync_links_known_patients_and_queues_the_rest(server, study, subjects):
    from capture.imaging import services

    services.add_identifier(actor=SYSTEM, subject=subjects["b"], kind="patient_id", value="ORTH-2")
    result = dicomweb.link(actor=SYSTEM, study=study, server="orthanc")
    assert result["studies_found"] == 3 and result["linked"] == 1 and result["queued"] == 2
    assert ImagingStudy.objects.get(subject=subjects["b"]).modalities == "MR"


def test_the_command_links_a_subject(server, study, subjects, capsys):
    call_command(
        "link_dicomweb",
        "--study",
        "trial",
        "--server",
        "orthanc",
        "--subject",
        "A-0001",
        "--patient-id",
        "ORTH-1",
    )
    assert "2 studies found on orthanc: 2 new (2 linked, 0 queued)." in capsys.readouterr().out


def test_a_data_manager_links_from_the_subject_page(client, server, personas, subjects):
    client.force_login(personas["data_manager"])
    url = reverse("imaging:subject_link", args=["trial", "A-0001"])
    response = client.post(url, {"web-server": "orthanc", "web-patient_id": "ORTH-1"}, follow=True)
    assert b"2 studies found on orthanc; 2 new linked." in response.content
    assert b"<svg" in response.content  # landed on the timeline


def test_an_unknown_server_name_lists_the_configured_ones(server, study, subjects):
    with pytest.raises(ValidationError, match="choose one of: orthanc"):
        dicomweb.link(actor=SYSTEM, study=study, server="pacs", subject=subjects["a"], patient_id="ORTH-1")


def test_an_unreachable_server_says_what_to_check(settings, study, subjects):
    settings.CAPTURE = {**settings.CAPTURE, "DICOMWEB_SERVERS": {"down": "http://127.0.0.1:9/dicom-web"}}
    with pytest.raises(ValidationError, match="did not answer the search"):
        dicomweb.link(actor=SYSTEM, study=study, server="down", subject=subjects["a"], patient_id="X")
    assert not ImagingStudy.objects.exists()


def test_servers_come_from_the_environment(settings, monkeypatch):
    settings.CAPTURE = {k: v for k, v in settings.CAPTURE.items() if k != "DICOMWEB_SERVERS"}
    monkeypatch.setenv("CAPTURE_DICOMWEB_SERVERS", "pacs=https://pacs.example.org/dicom-web")
    assert dicomweb.servers() == {"pacs": "https://pacs.example.org/dicom-web"}
