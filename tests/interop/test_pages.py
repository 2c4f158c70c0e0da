"""Upload, preview and confirm pages; exports; who may use them."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from capture.definitions.models import Schedule
from capture.studies.models import Study
from tests.requirements import SHARED_HOW, need

from .conftest import OWN, REDCAP, longitudinal_files, shared


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def _new_study_post(client, path, slug="imported", **extra):
    data = {
        "format": "redcap",
        "target": "study",
        "slug": slug,
        "name": "Imported study",
        "file": _upload(path.name, path.read_bytes()),
        **extra,
    }
    return client.post(reverse("definitions:import_new"), data)


def test_staff_previews_a_dictionary_then_creates_the_study(client, make_user):
    path = shared(REDCAP / "redcapr_longitudinal_dictionary.csv")
    client.force_login(make_user("boss", is_staff=True))
    files = longitudinal_files()
    response = _new_study_post(
        client,
        path,
        arms=_upload("arm.csv", files["arms"]),
        events=_upload("event.csv", files["events"]),
        mapping=_upload("mapping.csv", files["mapping"]),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Create the study" in page
    for field in ("given_birth", "bmi", "specify_mood", "gym", "comments"):
        assert f'data-name="{field}"' in page, f"field {field} must render in the preview"
    assert "round(([weight]*10000)/(([height])^(2)),1)" in page
    assert "[sex] = &quot;0&quot;" in page
    assert not Study.objects.filter(slug="imported").exists(), "the preview writes nothing"
    token = response.context["token"]
    confirmed = client.post(reverse("definitions:import_new"), {"token": token})
    assert confirmed.status_code == 302
    study = Study.objects.get(slug="imported")
    assert [a.name for a in study.schedule.arms.all()] == ["arm_1", "arm_2"]


def test_every_field_of_every_shared_dictionary_renders_in_the_preview(client, make_user):
    from .conftest import dictionary_kwargs, redcap_dictionaries

    client.force_login(make_user("boss", is_staff=True))
    names = redcap_dictionaries()
    need(names, f"../shared ({REDCAP}, its REDCap dictionaries)", SHARED_HOW)
    from capture.definitions.converters import Conversion, redcap

    for name in names:
        data = (REDCAP / name).read_bytes()
        extra = {k: _upload(f"{k}.csv", v) for k, v in dictionary_kwargs(name).items()}
        response = client.post(
            reverse("definitions:import_new"),
            {"format": "redcap", "target": "registry", "file": _upload(name, data), **extra},
        )
        assert response.status_code == 200, name
        page = response.content.decode()
        conversion = Conversion(source=name, kind="redcap")
        # The first field is the record id, the subject id: not a field of the form.
        for row in redcap.read_rows(redcap.decode(data, conversion), conversion)[1:]:
            assert f'data-name="{row.get("field_name")}"' in page, f"{name}: {row.get('field_name')}"


def test_errors_are_listed_with_line_and_column_and_nothing_can_be_confirmed(client, make_user):
    client.force_login(make_user("boss", is_staff=True))
    bad = (OWN / "redcap" / "awkward_dictionary.csv").read_bytes().replace(b"yesno", b"yesnoo")
    response = client.post(
        reverse("definitions:import_new"),
        {"format": "redcap", "target": "study", "slug": "bad", "file": _upload("bad.csv", bad)},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "yesnoo" in page and "D (Field Type)" in page
    assert response.context["token"] is None
    assert 'name="token"' not in page


def test_a_non_staff_user_may_not_create_studies(client, personas):
    client.force_login(personas["admin"])
    assert client.get(reverse("definitions:import_new")).status_code == 403


def test_an_expired_or_forged_token_creates_nothing(client, make_user):
    client.force_login(make_user("boss", is_staff=True))
    response = client.post(reverse("definitions:import_new"), {"token": "forged"})
    assert response.status_code == 404
    assert Study.objects.count() == 0


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin", 200),
        ("pi", 403),
        ("data_manager", 403),
        ("coordinator_a", 403),
        ("statistician", 403),
        ("monitor", 403),
        ("outsider", 404),
    ],
)
def test_only_study_administrators_may_load_new_definitions(client, personas, persona, status):
    client.force_login(personas[persona])
    assert client.get(reverse("definitions:import_for_study", args=["trial"])).status_code == status


@pytest.mark.parametrize(
    ("persona", "status"),
    [("admin", 200), ("statistician", 200), ("coordinator_b", 200), ("outsider", 404)],
)
def test_members_may_download_definitions_and_others_get_404(client, personas, persona, status):
    client.force_login(personas[persona])
    for fmt in ("redcap", "odm", "events"):
        assert client.get(reverse("definitions:export", args=["trial", fmt])).status_code == status


def test_anonymous_users_are_sent_to_login(client, study):
    response = client.get(reverse("definitions:export", args=["trial", "redcap"]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_study_administrator_updates_definitions_as_a_new_version(client, personas, make_user):
    from capture.definitions import services
    from capture.definitions.converters import redcap

    path = shared(REDCAP / "redcapr_simple_dictionary.csv")
    boss = make_user("boss", is_staff=True)
    conversion = redcap.read_dictionary(path.read_bytes(), project="simple", source=path.name)
    study, _ = services.create_study_from_conversion(
        actor=boss, conversion=conversion, slug="simple", name="Simple"
    )
    from capture.studies import services as study_services

    study_services.grant_role(actor=boss, study=study, user=personas["admin"], role="study_admin")
    client.force_login(personas["admin"])
    changed = path.read_bytes().replace(b'"Age (years)"', b'"Age at consent (years)"')
    response = client.post(
        reverse("definitions:import_for_study", args=["simple"]),
        {"format": "redcap", "file": _upload("dictionary.csv", changed)},
    )
    assert response.status_code == 200
    assert "form simple_demographics@1.1" in response.context["changes"]["new_version"]
    assert "form simple_health@1.0" in response.context["changes"]["unchanged"]
    assert "schedule simple@1.1" in response.context["changes"]["new_version"]
    confirmed = client.post(
        reverse("definitions:import_for_study", args=["simple"]), {"token": response.context["token"]}
    )
    assert confirmed.status_code == 302
    study.refresh_from_db()
    assert study.schedule.ref == "simple@1.1"
    assert Schedule.objects.filter(name="simple").count() == 2, "the old version stays"
    demographics = {f.form.ref for f in study.schedule.arms.get().events.get().event_forms.all()}
    assert "simple_demographics@1.1" in demographics and "simple_health@1.0" in demographics


def test_a_study_with_subjects_keeps_its_schedule_and_says_why(client, personas, subjects):
    client.force_login(personas["admin"])
    path = shared(REDCAP / "redcapr_simple_dictionary.csv")
    response = client.post(
        reverse("definitions:import_for_study", args=["trial"]),
        {"format": "redcap", "file": _upload("d.csv", path.read_bytes())},
    )
    refused = client.post(
        reverse("definitions:import_for_study", args=["trial"]), {"token": response.context["token"]}
    )
    assert refused.status_code == 422
    assert "protocol amendment" in refused.content.decode()
    assert Study.objects.get(slug="trial").schedule.ref == "basic@1.0"
