"""Every study and definitions service names its actor and checks it; commands act as `--as USER`
or as the system, labelled with the command's name in the audit trail."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.definitions import services as definitions
from capture.definitions.loader import load_definitions
from capture.definitions.models import DataElement
from capture.studies import services
from capture.studies.models import Study
from tests.conftest import BASIC


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_study_services_refuse_none_as_actor(study, basic_definitions, make_user):
    site = study.sites.get(code="A")
    user = make_user("nobody_yet")
    calls = [
        lambda: services.create_study(actor=None, slug="x", name="X", schedule=basic_definitions),
        lambda: services.add_site(actor=None, study=study, code="C", name="Site C"),
        lambda: services.grant_role(actor=None, study=study, user=user, role="pi"),
        lambda: services.revoke_role(actor=None, study=study, user=user),
        lambda: services.enroll_subject(
            actor=None, study=study, site=site, enrollment_date=dt.date(2025, 1, 2)
        ),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="actor is required"):
            call()
    assert not Study.objects.filter(slug="x").exists()
    assert study.sites.count() == 2 and not study.subjects.exists()


def test_definitions_services_refuse_none_as_actor(study, tmp_path):
    with pytest.raises(TypeError, match="actor is required"):
        load_definitions([BASIC], actor=None)
    with pytest.raises(TypeError, match="actor is required"):
        definitions.export_odm(actor=None, study=study)
    with pytest.raises(TypeError, match="actor is required"):
        definitions.export_redcap_dictionary(actor=None, study=study)


def test_a_user_who_is_not_staff_may_not_create_a_study(basic_definitions, make_user):
    with pytest.raises(PermissionDenied, match="Only staff"):
        services.create_study(actor=make_user("plain"), slug="x", name="X", schedule=basic_definitions)
    assert not Study.objects.filter(slug="x").exists()


def test_only_staff_or_the_study_admin_add_sites_and_grant_roles(study, personas, make_user):
    with pytest.raises(PermissionDenied, match="does not allow managing"):
        services.add_site(actor=personas["coordinator_a"], study=study, code="C", name="Site C")
    with pytest.raises(PermissionDenied, match="does not allow managing"):
        services.grant_role(actor=personas["pi"], study=study, user=make_user("newcomer"), role="pi")
    with pytest.raises(PermissionDenied, match="does not allow managing"):
        services.revoke_role(actor=personas["outsider"], study=study, user=personas["monitor"])
    assert set(study.sites.values_list("code", flat=True)) == {"A", "B"}
    site = services.add_site(actor=personas["admin"], study=study, code="C", name="Site C")
    assert site.code == "C"


def test_loading_definitions_without_as_is_audited_as_the_command(db):
    _run("load_definitions", str(BASIC))
    event = AuditEvent.objects.get(action="definitions.load")
    assert event.actor_id is None
    assert event.actor_label == "system: manage.py load_definitions"


def test_loading_definitions_as_a_user_who_is_not_staff_is_refused(make_user):
    make_user("plain")
    with pytest.raises(CommandError, match="Only staff may load definitions"):
        _run("load_definitions", str(BASIC), "--as", "plain")
    assert not DataElement.objects.exists()
    assert not AuditEvent.objects.exists()


def test_create_study_without_as_is_audited_as_the_command(basic_definitions):
    _run("create_study", "cmd", "--name", "By command", "--schedule", "basic@1.0", "--site", "A=Site A")
    study = Study.objects.get(slug="cmd")
    labels = set(AuditEvent.objects.filter(study=study).values_list("action", "actor_label"))
    assert labels == {
        ("study.create", "system: manage.py create_study"),
        ("site.create", "system: manage.py create_study"),
    }


def test_create_study_as_a_user_is_refused_or_names_them(basic_definitions, make_user):
    make_user("plain")
    with pytest.raises(CommandError, match="Only staff may create studies"):
        _run("create_study", "cmd", "--name", "X", "--schedule", "basic@1.0", "--as", "plain")
    assert not Study.objects.filter(slug="cmd").exists()
    staff = make_user("boss", is_staff=True)
    _run("create_study", "cmd", "--name", "X", "--schedule", "basic@1.0", "--as", "boss")
    event = AuditEvent.objects.get(action="study.create", study__slug="cmd")
    assert (event.actor_id, event.actor_label) == (staff.pk, "boss")


def test_exporting_definitions_as_a_user_outside_the_study_is_refused(study, personas, tmp_path):
    with pytest.raises(CommandError, match="no role in Trial"):
        _run("export_odm", "trial", "--out", str(tmp_path / "odm.xml"), "--as", "outsider")
    assert not (tmp_path / "odm.xml").exists()
    _run("export_odm", "trial", "--out", str(tmp_path / "odm.xml"))
    event = AuditEvent.objects.get(action="definitions.export")
    assert event.actor_label == "system: manage.py export_odm"


def test_system_actor_enrols_without_a_user_row(study):
    subject = services.enroll_subject(
        actor=SYSTEM, study=study, site=study.sites.get(code="A"), enrollment_date=dt.date(2025, 1, 2)
    )
    event = AuditEvent.objects.get(action="subject.enroll", object_id=str(subject.pk))
    assert (event.actor_id, event.actor_label) == (None, "system")


def test_export_dataset_takes_as_for_the_person_it_exports_for(personas, study, tmp_path):
    with pytest.raises(CommandError, match="outsider has no study 'trial'"):
        _run("export_dataset", "--study", "trial", "--as", "outsider", "--output", str(tmp_path))
    assert not list(tmp_path.iterdir())
