"""Save & stay, Save & next form, Save & next subject, Save & exit; a locked form offers no Save;
a repeating form lists its instances with each one's status (issue 16, entry page item 7)."""

from django.urls import reverse

from capture.records.models import FormRecord, Status
from capture.records.services import save_record, set_record_lock
from capture.studies import services as study_services
from tests.web.test_entry_pages import VISIT, post, saved, url


def test_save_and_stay_comes_back_to_the_same_form(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(client, ecrf_subjects["a"], {**VISIT, "__next": "stay"})
    assert response.status_code == 302
    assert response["Location"] == url("entry", ecrf_subjects["a"])


def test_save_and_next_form_opens_the_next_form_of_the_schedule(client, personas, ecrf_subjects):
    # The visit is the only form at baseline: the next one is the treatment line at follow-up.
    client.force_login(personas["coordinator_a"])
    response = post(client, ecrf_subjects["a"], {**VISIT, "__next": "form"})
    assert response.status_code == 302
    assert response["Location"] == url("entry", ecrf_subjects["a"], event="follow_up", form="treatment")
    assert FormRecord.objects.get().data["weight"] == 70


def test_save_and_next_form_on_the_last_form_goes_to_the_subject(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    subject = ecrf_subjects["a"]
    response = post(
        client, subject, {"agent": "cisplatin", "__next": "form"}, event="follow_up", form="treatment"
    )
    assert response["Location"] == reverse("web:subject", args=["ecrf", subject.subject_id])


def test_save_and_next_subject_opens_the_same_form_of_the_next_subject_the_user_sees(
    client, personas, ecrf_study, ecrf_subjects
):
    site_a = ecrf_study.sites.get(code="A")
    later = study_services.enroll_subject(
        actor=personas["admin"],
        study=ecrf_study,
        site=site_a,
        enrollment_date=ecrf_subjects["a"].enrollment_date,
    )
    client.force_login(personas["coordinator_a"])  # sees site A only: subject "b" is skipped
    response = post(client, ecrf_subjects["a"], {**VISIT, "__next": "next_subject"})
    assert response["Location"] == url("entry", later)
    # The last subject: back to the dashboard, with a message that says so.
    response = post(client, later, {**VISIT, "__next": "next_subject"})
    assert response["Location"].startswith(reverse("web:dashboard", args=["ecrf"]))
    assert "last subject" in client.get(response["Location"]).content.decode()


def test_save_and_exit_goes_to_the_subject_page(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(client, ecrf_subjects["a"], {**VISIT, "__next": "exit"})
    assert response["Location"] == reverse("web:subject", args=["ecrf", ecrf_subjects["a"].subject_id])


def test_the_page_offers_the_four_saves(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    for value, text in (
        ("stay", "Save &amp; stay"),
        ("form", "Save &amp; next form"),
        ("next_subject", "Save &amp; next subject"),
        ("exit", "Save &amp; exit"),
    ):
        assert f'name="__next" value="{value}"' in page and text in page


def test_a_refused_save_does_not_move_on(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(client, ecrf_subjects["a"], {**VISIT, "weight": "heavy", "__next": "form"})
    assert response.status_code == 200 and "is not a number" in response.content.decode()


def test_a_locked_form_shows_no_save_button(client, personas, ecrf_subjects):
    record = saved(personas, ecrf_subjects["a"])
    set_record_lock(actor=personas["data_manager"], record=record, locked=True, reason="cleaned")
    client.force_login(personas["coordinator_a"])
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert 'type="submit" class="primary"' not in page and 'name="__next"' not in page
    assert "locked" in page


def test_a_read_only_role_sees_no_save_button(client, personas, ecrf_subjects):
    saved(personas, ecrf_subjects["a"])
    client.force_login(personas["pi"])
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert 'name="__next"' not in page and "Save &amp; stay" not in page


def test_repeating_form_lists_its_instances_with_each_ones_status(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    for instance, status in ((1, Status.COMPLETE), (2, Status.INCOMPLETE)):
        save_record(
            actor=personas["coordinator_a"],
            subject=subject,
            event_name="follow_up",
            form_name="treatment",
            values={"agent": f"drug {instance}"},
            status=status,
            instance=instance,
        )
    client.force_login(personas["coordinator_a"])
    page = client.get(url("entry", subject, event="follow_up", form="treatment")).content.decode()
    nav = page[
        page.index('<nav class="instances"') : page.index("</nav>", page.index('<nav class="instances"'))
    ]
    assert "#1 Complete" in nav and "#2 Incomplete" in nav
