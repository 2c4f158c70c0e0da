"""A cohort filter is checked against the study's items and codes before anything runs, and the
builder's example is written with the study's own items."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from capture.definitions.expressions import fields_used
from capture.exports.builder import DatasetBuilder
from capture.exports.services import request_export
from capture.exports.spec import ExportSpec
from capture.jobs.models import Job

FORM = {"layout": "wide", "formats": ["csv"], "checkboxes": "split", "date_mode": "shift"}


def _statistician():
    return get_user_model().objects.get(username="statistician")


def test_the_builder_example_names_the_demo_studys_own_items_and_runs(client, demo):
    client.force_login(_statistician())
    page = client.get(reverse("exports:builder", args=[demo.study.slug])).content.decode()
    example = (
        re.search(r"e\.g\. (.+?)\. Names and codes", page)[1].replace("&#x27;", "'").replace("&gt;", ">")
    )
    # The demo's demographics form: gender coded female/male/..., age at enrolment a number.
    assert example == "[gender] = 'female' and [age_at_enrollment] >= 18"
    assert "[sex]" not in page and "[age]" not in page
    assert fields_used(example) == {"gender", "age_at_enrollment"}
    DatasetBuilder(study=demo.study, user=_statistician(), spec=ExportSpec(cohort=example))  # accepted


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("[sex] = '1' and [age] >= 18", "[sex], which is not an item of this study"),
        ("[gender] = '1'", "compares [gender] with '1', which is not one of its codes ('female', 'male'"),
        ("[imaging_body_region(lungs)] = '1'", "compares [imaging_body_region] with 'lungs'"),
    ],
)
def test_a_filter_that_could_only_keep_nobody_is_refused_at_its_field_and_starts_no_job(
    client, demo, expression, says, django_capture_on_commit_callbacks
):
    client.force_login(_statistician())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("exports:builder", args=[demo.study.slug]), {**FORM, "cohort": expression}
        )
    assert response.status_code == 200
    page = response.content.decode().replace("&#x27;", "'")
    field = page[page.index('name="cohort"') :]
    assert says in field[: field.index("</div>")]  # shown under the cohort field itself
    assert not Job.objects.exists()  # never "Done, 0 rows"


def test_the_service_an_api_calls_refuses_it_before_queueing(demo):
    with pytest.raises(ValidationError) as caught:
        request_export(actor=_statistician(), study=demo.study, spec=ExportSpec(cohort="[gender] = 'F'"))
    assert caught.value.message_dict["cohort"][0].startswith("The cohort filter compares [gender] with 'F'")
    assert not Job.objects.exists()


def test_codes_missing_data_codes_and_blanks_are_accepted(demo):
    for expression in (
        "[gender] = 'male'",
        "[gender] <> 'UNK'",
        "[gender] = ''",
        "[imaging_body_region(chest)] = '1'",
    ):
        DatasetBuilder(study=demo.study, user=_statistician(), spec=ExportSpec(cohort=expression))
