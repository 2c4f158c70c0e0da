"""Imaging services name their actor and check it; the imaging commands act as `--as USER` or as
the system, labelled with the command's name."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from capture.audit.models import AuditEvent
from capture.imaging import services as imaging
from capture.imaging.models import ImagingStudy
from capture.imaging.sharing import deidentify_tree


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_imaging_services_refuse_none_as_actor(linked, study, dicom_tree, tmp_path):
    subject = linked["b"]
    with pytest.raises(TypeError, match="actor is required"):
        imaging.add_identifier(actor=None, subject=subject, kind="patient_id", value="MRN-9")
    with pytest.raises(TypeError, match="actor is required"):
        imaging.ingest_files(
            actor=None, study=study, paths=[str(dicom_tree)], source_kind="folder", source="x"
        )
    with pytest.raises(TypeError, match="actor is required"):
        deidentify_tree(actor=None, study=study, src=dicom_tree, dst=tmp_path / "out")
    assert not subject.source_identifiers.exists()
    assert not ImagingStudy.objects.exists()
    assert not (tmp_path / "out").exists()


def test_ingest_command_as_a_user_without_import_permission_is_refused(linked, personas, dicom_tree):
    with pytest.raises(CommandError, match="does not allow linking images"):
        _run("ingest_dicom", str(dicom_tree), "--study", "trial", "--as", "statistician")
    assert not ImagingStudy.objects.exists()
    assert not AuditEvent.objects.filter(action=imaging.INGEST).exists()


def test_ingest_command_without_as_is_audited_as_the_command(linked, dicom_tree):
    _run("ingest_dicom", str(dicom_tree), "--study", "trial")
    event = AuditEvent.objects.get(action=imaging.INGEST)
    assert (event.actor_id, event.actor_label) == (None, "system: manage.py ingest_dicom")


def test_ingest_command_as_a_data_manager_names_them(linked, personas, dicom_tree):
    _run("ingest_dicom", str(dicom_tree), "--study", "trial", "--as", "data_manager")
    event = AuditEvent.objects.get(action=imaging.INGEST)
    assert (event.actor_id, event.actor_label) == (personas["data_manager"].pk, "data_manager")


def test_deidentified_copies_need_the_export_permission(linked, personas, study, dicom_tree, tmp_path):
    with pytest.raises(PermissionDenied, match="does not allow de-identified copies of images"):
        deidentify_tree(actor=personas["coordinator_a"], study=study, src=dicom_tree, dst=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(CommandError, match="does not allow"):
        _run(
            "deidentify_dicom", str(dicom_tree), str(tmp_path / "out"), "--study", "trial", "--as", "monitor"
        )
    assert not AuditEvent.objects.filter(action="imaging.deidentify").exists()
