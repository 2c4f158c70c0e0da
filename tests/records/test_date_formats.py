"""Dates in the field's format (issue 16, entry page item 9): a REDCap date_dmy / date_mdy field
takes and shows its dates day or month first and stores them as ISO."""

import pytest
from django.urls import reverse

from capture.records.models import FormRecord
from tests.records.test_form_rules import rules_subject  # noqa: F401 - the fixture, used by name


def test_a_dmy_and_an_mdy_field_take_their_format_and_store_iso(client, personas, rules_subject):  # noqa: F811
    client.force_login(personas["coordinator_a"])
    url = reverse("records:entry", args=["rules", rules_subject.subject_id, "baseline", "course", 1])
    page = client.get(url).content.decode()
    assert 'name="stop_date" class="date" placeholder="DD-MM-YYYY" data-format="dmy"' in page
    assert 'name="first_dose" class="date" placeholder="MM-DD-YYYY" data-format="mdy"' in page
    assert 'name="start_date" class="date" placeholder="YYYY-MM-DD" autocomplete' in page
    response = client.post(
        url,
        {
            "__version": "",
            "__status": "0",
            "start_date": "2025-03-01",
            "stop_date": "31-03-2025",
            "first_dose": "03/02/2025",
        },
    )
    assert response.status_code == 302
    data = FormRecord.objects.get().data
    assert data == {"start_date": "2025-03-01", "stop_date": "2025-03-31", "first_dose": "2025-03-02"}
    page = client.get(url).content.decode()
    assert (
        'name="stop_date" class="date" placeholder="DD-MM-YYYY" data-format="dmy" autocomplete="off" value="31-03-2025"'
        in page
    )
    assert 'value="03-02-2025"' in page and 'value="2025-03-01"' in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [("2025-31-03", "type it as DD-MM-YYYY"), ("31-13-2025", "type it as DD-MM-YYYY")],
)
def test_a_date_that_does_not_fit_says_the_fields_format(client, personas, rules_subject, typed, message):  # noqa: F811
    client.force_login(personas["coordinator_a"])
    url = reverse("records:entry", args=["rules", rules_subject.subject_id, "baseline", "course", 1])
    response = client.post(url, {"__version": "", "__status": "0", "stop_date": typed})
    assert response.status_code == 200 and message in response.content.decode()
    assert f'value="{typed}"' in response.content.decode()  # what was typed stays for correcting
