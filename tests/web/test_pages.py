"""Pages: the status dashboard, the subject page, the record page."""

from django.urls import reverse

from capture.records.models import Status
from capture.records.services import save_record


def _record(personas, subject, status, **values):
    return save_record(
        actor=personas["admin"],
        subject=subject,
        event_name="baseline",
        form_name="demographics",
        values=values,
        status=status,
    )


def test_dashboard_shows_each_forms_status_colour(client, personas, subjects, study):
    _record(personas, subjects["a"], Status.COMPLETE, sex="1", age="40")
    _record(personas, subjects["b"], Status.UNVERIFIED, age="41")
    client.force_login(personas["data_manager"])
    page = client.get(reverse("web:dashboard", args=[study.slug])).content.decode()
    assert 'class="dot complete" title="Demographics: Complete"' in page
    assert 'class="dot unverified" title="Demographics: Unverified"' in page
    assert 'class="dot empty" title="Lesions: No data"' in page
    assert "2 subjects" in page  # the patients arm; the model is under its own tab
    models = client.get(reverse("web:dashboard", args=[study.slug]) + "?arm=models").content.decode()
    assert subjects["model"].subject_id in models and subjects["a"].subject_id not in models


def test_dashboard_search_and_site_filter(client, personas, subjects, study):
    client.force_login(personas["data_manager"])
    url = reverse("web:dashboard", args=[study.slug])
    page = client.get(url, {"site": "B"}).content.decode()
    assert subjects["b"].subject_id in page and subjects["a"].subject_id not in page
    page = client.get(url, {"q": "A-00"}).content.decode()
    assert subjects["a"].subject_id in page and subjects["b"].subject_id not in page


def test_record_page_hides_identifiers_from_roles_without_the_right(client, personas, subjects, study):
    _record(personas, subjects["a"], Status.INCOMPLETE, initials="JQD", sex="1")
    url = reverse("web:record", args=[study.slug, subjects["a"].subject_id, "baseline", "demographics", 1])
    client.force_login(personas["statistician"])
    page = client.get(url).content.decode()
    assert "JQD" not in page and "identifier hidden" in page and "Female" in page
    client.force_login(personas["coordinator_a"])
    assert "JQD" in client.get(url).content.decode()


def test_record_page_of_another_sites_subject_is_404(client, personas, subjects, study):
    _record(personas, subjects["b"], Status.INCOMPLETE, sex="1")
    client.force_login(personas["coordinator_a"])
    url = reverse("web:record", args=[study.slug, subjects["b"].subject_id, "baseline", "demographics", 1])
    assert client.get(url).status_code == 404


def test_subject_page_links_patient_and_derived_model(client, personas, subjects, study):
    client.force_login(personas["coordinator_a"])
    page = client.get(reverse("web:subject", args=[study.slug, subjects["a"].subject_id])).content.decode()
    assert subjects["model"].subject_id in page and "PDX" in page
    page = client.get(
        reverse("web:subject", args=[study.slug, subjects["model"].subject_id])
    ).content.decode()
    assert "Derived from" in page and subjects["a"].subject_id in page


def test_pages_send_a_content_security_policy_and_load_no_external_assets(client, personas, subjects, study):
    client.force_login(personas["admin"])
    response = client.get(reverse("web:dashboard", args=[study.slug]))
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    body = response.content.decode()
    assert "http://" not in body.replace("http://127.0.0.1", "") and "https://" not in body


def test_dashboard_offers_each_role_only_the_tools_it_may_use(client, personas, study):
    url = reverse("web:dashboard", args=[study.slug])
    imports = reverse("imports:index", args=[study.slug])
    exports = reverse("exports:builder", args=[study.slug])
    enrol = reverse("web:enroll", args=[study.slug])
    manage = reverse("definitions:import_for_study", args=[study.slug])
    seen = {}
    for persona in ("admin", "data_manager", "statistician", "coordinator_a", "monitor"):
        client.force_login(personas[persona])
        page = client.get(url).content.decode()
        seen[persona] = {
            name
            for name, link in [
                ("imports", imports),
                ("exports", exports),
                ("enrol", enrol),
                ("manage", manage),
            ]
            if f'href="{link}"' in page
        }
        assert reverse("imaging:list", args=[study.slug]) in page  # everyone who sees the study
    assert seen == {
        "admin": {"imports", "exports", "enrol", "manage"},
        "data_manager": {"imports", "exports", "enrol"},
        "statistician": {"exports"},
        "coordinator_a": {"enrol"},
        "monitor": set(),
    }


def test_subject_page_links_the_timeline_and_imaging_link_for_importers(client, personas, subjects, study):
    url = reverse("web:subject", args=[study.slug, subjects["a"].subject_id])
    timeline = reverse("imaging:timeline", args=[study.slug, subjects["a"].subject_id])
    link = reverse("imaging:subject_link", args=[study.slug, subjects["a"].subject_id])
    client.force_login(personas["data_manager"])
    page = client.get(url).content.decode()
    assert timeline in page and link in page
    client.force_login(personas["coordinator_a"])
    page = client.get(url).content.decode()
    assert timeline in page and link not in page
