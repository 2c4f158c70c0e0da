"""Data-entry pages: rendering, saving, errors, conflicts, reasons, history, locks, queries, permissions."""

import re

import pytest
from django.urls import reverse

from capture.records.models import FormRecord, Query, Status
from capture.records.services import save_record

VISIT = {
    "visit_date": "2025-03-01",
    "sex": "1",
    "pregnant": "0",
    "dob": "1970-05-01",
    "weight": "70",
    "height": "175",
}


def url(name, subject, *rest, event="baseline", form="visit", instance=1, **kw):
    args = [subject.study.slug, subject.subject_id, event, form, instance, *rest]
    return reverse(f"records:{name}", args=args, **kw)


def saved(personas, subject, values=None, **kw):
    kw.setdefault("actor", personas["coordinator_a"])
    return save_record(
        subject=subject, event_name="baseline", form_name="visit", values=values or dict(VISIT), **kw
    )


def hidden_inputs(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(__\w+)" value="([^"]*)"', html))


def post(client, subject, data, page_html=None, **kw):
    """POST the form as the page would: its hidden fields (version, base) and the data."""
    fields = hidden_inputs(page_html) if page_html else {"__version": ""}
    return client.post(url("entry", subject, **kw), {**fields, "__status": "0", **data})


def test_entry_page_renders_each_widget_kind_from_the_definition(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert 'type="radio" name="sex" value="1"' in page  # enumerated, radio widget
    assert 'type="checkbox" name="symptoms" value="other"' in page  # checkbox widget
    assert '<table class="matrix"><caption>Receptors' in page and 'name="er_status" value="pos"' in page
    assert '<template id="tpl-lesions">' in page and 'name="lesions-__i__-lesion_diameter"' in page
    assert 'class="calc" readonly' in page and 'name="bmi"' in page  # calculated, read-only
    assert 'class="date" placeholder="YYYY-MM-DD"' in page and 'type="date" class="picker"' in page
    assert '<span class="unit">kg</span>' in page and "<textarea" in page
    assert 'name="weight__mc"' in page and '<option value="UNK"' in page  # missing-data codes
    assert 'title="ECRF Weight — capture.ecrf_weight v1.0"' in page  # element id and version on hover
    assert "Ask every female participant." in page  # field note
    assert '<script src="/static/records/entry.js" defer>' in page and "onclick" not in page


def test_saving_through_the_page_stores_typed_values_and_server_calculations(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(
        client,
        ecrf_subjects["a"],
        {
            **VISIT,
            "bmi": "1",
            "symptoms": ["pain", "other"],
            "other_symptom": "itch",
            "er_status": "pos",
            "lesions-0-lesion_site": "liver",
            "lesions-0-lesion_diameter": "12.5",
            "lesions-3-lesion_diameter": "20",
            "lesions-7-lesion_site": "",
        },
    )
    assert response.status_code == 302
    record = FormRecord.objects.get()
    assert record.data["bmi"] == 22.9 and record.data["age"] == 54 and record.data["sum_diameters"] == 32.5
    assert record.data["symptoms"] == ["other", "pain"] and record.data["er_status"] == "pos"
    assert record.data["lesions"] == [
        {"lesion_site": "liver", "lesion_diameter": 12.5},
        {"lesion_diameter": 20.0},
    ]
    page = client.get(response.url).content.decode()
    assert 'name="bmi" value="22.9"' in page and "Saved Clinic visit (version 1)" in page
    assert 'name="lesions-1-lesion_diameter"' in page and 'value="20"' in page


def test_errors_sit_next_to_their_fields_and_typed_values_are_kept(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    response = post(
        client,
        ecrf_subjects["a"],
        {**VISIT, "weight": "70.55", "visit_date": "1/3/25", "__status": "2", "sex": "1", "pregnant": ""},
    )
    page = response.content.decode()
    assert response.status_code == 200 and not FormRecord.objects.exists()
    assert "The form was not saved: correct the fields marked below. (3 fields)" in page
    weight = page[page.index('id="f-weight"') : page.index('id="f-height"')]
    assert 'value="70.55"' in weight and "Weight: has more than 1 decimal place(s)" in weight
    visit = page[page.index('id="f-visit_date"') : page.index('id="f-sex"')]
    assert "is not a date; type it as YYYY-MM-DD or pick it" in visit
    assert "Currently pregnant?: required" in page[page.index('id="f-pregnant"') : page.index('id="f-dob"')]


def test_hidden_field_starts_hidden_and_its_value_is_not_saved(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    post(client, ecrf_subjects["a"], {**VISIT, "sex": "2", "pregnant": "1"})
    assert "pregnant" not in FormRecord.objects.get().data
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert '<div class="field" id="f-pregnant" data-name="pregnant" hidden>' in page


def test_missing_data_code_chosen_from_the_menu_is_saved_distinct_from_blank(client, personas, ecrf_subjects):
    client.force_login(personas["coordinator_a"])
    post(client, ecrf_subjects["a"], {**VISIT, "weight": "", "weight__mc": "NASK", "er_status__mc": "ND"})
    record = FormRecord.objects.get()
    assert record.data["weight"] == "NASK" and record.data["er_status"] == "ND" and "bmi" not in record.data
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert '<option value="NASK" title="Not asked" selected>' in page


def test_edit_conflict_shows_both_values_takes_their_other_changes_and_saves_the_choice(
    client, personas, ecrf_subjects
):
    subject = ecrf_subjects["a"]
    saved(personas, subject)
    client.force_login(personas["coordinator_a"])
    opened = client.get(url("entry", subject)).content.decode()
    saved(
        personas,
        subject,
        {**VISIT, "weight": "72", "height": "180"},
        expected_version=1,
        actor=personas["data_manager"],
    )

    response = post(client, subject, {**VISIT, "weight": "75", "comments": "mine"}, page_html=opened)
    page = response.content.decode()
    assert response.status_code == 200 and "data_manager saved this form (version 2)" in page
    weight = page[page.index('id="f-weight"') : page.index('id="f-height"')]
    assert "Keep yours: <strong>75</strong>" in weight and "Use theirs: <strong>72</strong>" in weight
    assert 'name="height" inputmode="numeric" class="num" value="180"' in page  # only they changed it
    assert 'value="mine"' in page  # only I changed comments: kept
    assert FormRecord.objects.get().data["weight"] == 72.0  # nothing overwritten yet

    fields = hidden_inputs(page)
    unresolved = client.post(
        url("entry", subject), {**fields, **VISIT, "weight": "75", "height": "180", "__status": "0"}
    )
    assert "choose which value to keep" in unresolved.content.decode()

    done = client.post(
        url("entry", subject),
        {
            **fields,
            **VISIT,
            "weight": "75",
            "height": "180",
            "comments": "mine",
            "__keep__weight": "theirs",
            "__status": "0",
        },
    )
    assert done.status_code == 302
    record = FormRecord.objects.get()
    assert record.version == 3 and record.data["weight"] == 72.0
    assert record.data["height"] == 180 and record.data["comments"] == "mine"


def test_changing_a_complete_form_asks_for_a_reason_next_to_the_reason_field(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    saved(personas, subject, status=Status.COMPLETE)
    client.force_login(personas["coordinator_a"])
    opened = client.get(url("entry", subject)).content.decode()
    assert 'name="__reason"' in opened
    response = post(client, subject, {**VISIT, "weight": "71", "__status": "2"}, page_html=opened)
    page = response.content.decode()
    assert 'id="reason-error">This form is Complete: give a reason' in page
    response = post(
        client,
        subject,
        {**VISIT, "weight": "71", "__status": "2", "__reason": "source check"},
        page_html=opened,
    )
    assert response.status_code == 302 and FormRecord.objects.get().data["weight"] == 71.0


def test_field_history_shows_who_when_old_new_and_why(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    saved(personas, subject, status=Status.COMPLETE)
    saved(
        personas,
        subject,
        {**VISIT, "sex": "2"},
        expected_version=1,
        status=2,
        reason="wrong box ticked",
        actor=personas["data_manager"],
    )
    client.force_login(personas["coordinator_a"])
    page = client.get(url("history", subject, "sex")).content.decode()
    assert "coordinator_a" in page and "data_manager" in page and "wrong box ticked" in page
    assert "<td>Female</td><td>Male</td>" in page
    assert client.get(url("entry", subject)).content.decode().count('href="../history/') >= 10


def test_locked_form_is_read_only_on_the_page_and_a_post_changes_nothing(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    record = saved(personas, subject)
    client.force_login(personas["data_manager"])
    response = client.post(url("lock", subject), {"action": "lock", "reason": "interim analysis"})
    assert response.status_code == 302 and FormRecord.objects.get().locked
    client.force_login(personas["coordinator_a"])
    page = client.get(url("entry", subject)).content.decode()
    assert '<fieldset class="plain" disabled>' in page and "This form is locked" in page
    response = post(client, subject, {**VISIT, "weight": "99", "__version": str(record.version)})
    assert "Not saved:" in response.content.decode() and FormRecord.objects.get().data["weight"] == 70.0


def test_subject_lock_from_the_subject_page(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    saved(personas, subject)
    client.force_login(personas["data_manager"])
    response = client.post(
        reverse("records:lock_subject", args=["ecrf", subject.subject_id]),
        {"action": "lock", "reason": "final"},
    )
    assert response.status_code == 302
    page = client.get(reverse("web:subject", args=["ecrf", subject.subject_id])).content.decode()
    assert "Locked by data_manager" in page and "Unlock subject" in page


def test_add_instance_opens_the_next_number_of_a_repeating_form(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="follow_up",
        form_name="treatment",
        values={"agent": "a"},
    )
    client.force_login(personas["coordinator_a"])
    response = client.get(
        reverse("records:add_instance", args=["ecrf", subject.subject_id, "follow_up", "treatment"])
    )
    assert response.url == url("entry", subject, event="follow_up", form="treatment", instance=2)
    assert client.get(url("entry", subject, event="visit", form="visit")).status_code == 404


def test_pi_signs_the_form_with_the_password(client, personas, ecrf_subjects):
    from tests.conftest import PASSWORD

    subject = ecrf_subjects["a"]
    saved(personas, subject, status=Status.COMPLETE)
    client.force_login(personas["pi"])
    assert "✍ E-sign this form" in client.get(url("entry", subject)).content.decode()
    wrong = client.post(url("sign", subject), {"password": "nope"})
    assert "The password is not correct" in wrong.content.decode()
    assert client.post(url("sign", subject), {"password": PASSWORD}).status_code == 302
    assert "Signed by pi" in client.get(url("entry", subject)).content.decode()


def test_query_raised_answered_and_closed_through_the_pages_and_listed_by_site(
    client, personas, ecrf_subjects
):
    a, b = ecrf_subjects["a"], ecrf_subjects["b"]
    saved(personas, a)
    saved(personas, b, actor=personas["coordinator_b"])
    client.force_login(personas["monitor"])
    response = client.post(url("query_new", a), {"field": "weight", "text": "Source says 72?"})
    query = Query.objects.get()
    assert response.url == reverse("records:query", args=["ecrf", query.pk])
    client.post(url("query_new", b), {"field": "height", "text": "Check height"})
    listing = client.get(reverse("records:queries", args=["ecrf"]), {"site": "A"}).content.decode()
    assert "A-0001" in listing and "B-0001" not in listing
    client.force_login(personas["coordinator_a"])
    assert "1 open" in client.get(url("entry", a)).content.decode()
    assert "B-0001" not in client.get(reverse("records:queries", args=["ecrf"])).content.decode()
    client.post(
        reverse("records:query", args=["ecrf", query.pk]), {"action": "answer", "text": "Yes, corrected"}
    )
    client.force_login(personas["monitor"])
    client.post(reverse("records:query", args=["ecrf", query.pk]), {"action": "close", "text": ""})
    query.refresh_from_db()
    assert query.status == Query.CLOSED


def test_identifier_values_are_not_sent_to_roles_without_the_right(client, personas, ecrf_subjects):
    saved(personas, ecrf_subjects["a"])
    client.force_login(personas["statistician"])
    page = client.get(url("entry", ecrf_subjects["a"])).content.decode()
    assert "1970-05-01" not in page and "Identifier: hidden for your role" in page
    assert "Read-only: your role may read this form" in page


def test_dashboard_cells_open_the_data_entry_page(client, personas, ecrf_subjects, ecrf_study):
    client.force_login(personas["coordinator_a"])
    page = client.get(reverse("web:dashboard", args=["ecrf"])).content.decode()
    assert url("entry", ecrf_subjects["a"]) in page


# (persona, method, route, status): who may reach what. 404 when the subject or study is not
# theirs to see; 403 when they see it but their role may not do this.
PERMISSIONS = [
    ("outsider", "get", "entry", 404),
    ("coordinator_b", "get", "entry", 404),
    ("coordinator_a", "get", "entry", 200),
    ("statistician", "get", "entry", 200),
    ("statistician", "post", "entry", 403),
    ("monitor", "post", "entry", 403),
    ("pi", "post", "entry", 403),
    ("coordinator_b", "post", "entry", 404),
    ("coordinator_a", "post", "lock", 403),
    ("monitor", "post", "lock", 403),
    ("data_manager", "post", "lock", 302),
    ("coordinator_a", "get", "sign", 403),
    ("data_manager", "get", "sign", 403),
    ("pi", "get", "sign", 200),
    ("coordinator_a", "get", "query_new", 403),
    ("monitor", "get", "query_new", 200),
    ("coordinator_b", "get", "history", 404),
    ("statistician", "get", "history", 200),
    ("outsider", "get", "history", 404),
    ("statistician", "post", "remove", 403),
    ("coordinator_b", "post", "remove", 404),
    ("coordinator_a", "get", "record_queries", 200),
]


@pytest.mark.parametrize(("persona", "method", "route", "status"), PERMISSIONS)
def test_permission_table(client, personas, ecrf_subjects, persona, method, route, status):
    saved(personas, ecrf_subjects["a"])
    client.force_login(personas[persona])
    extra = ["weight"] if route == "history" else []
    target = url(route, ecrf_subjects["a"], *extra)
    if route == "query_new":
        target += "?field=weight"
    data = (
        {"action": "lock", "reason": "x", "__status": "0", "__version": "1", **VISIT}
        if method == "post"
        else None
    )
    response = getattr(client, method)(target, data) if data else client.get(target)
    assert response.status_code == status


def test_study_query_list_is_404_for_outsiders(client, personas, ecrf_study):
    client.force_login(personas["outsider"])
    assert client.get(reverse("records:queries", args=["ecrf"])).status_code == 404


def test_raise_query_page_without_a_field_asks_which_field(client, personas, ecrf_subjects):
    saved(personas, ecrf_subjects["a"])
    client.force_login(personas["monitor"])
    page = client.get(url("query_new", ecrf_subjects["a"])).content.decode()
    assert (
        '<select name="field" id="id_field" required>' in page
        and '<option value="weight">Weight</option>' in page
    )
    assert client.get(url("query_new", ecrf_subjects["a"]) + "?field=colour").status_code == 404
