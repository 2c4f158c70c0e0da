"""Form rules across fields (`rules:` of a form definition, issue 16 item 8): checked on every save
by the one validator, so entry, imports and both APIs refuse a stop date before its start date with
the rule's message at the field; the loader refuses a rule it cannot check."""

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from capture.accounts.system import SYSTEM
from capture.definitions.loader import DefinitionError, load_definitions
from capture.definitions.models import FormDefinition, Schedule
from capture.records.bulk import FormValidator
from capture.records.services import RecordValidationError, save_record
from capture.records.validation import clean_values
from capture.studies import services

RULES = Path(__file__).resolve().parent / "rules_definitions"
MESSAGE = "Stop date: the stop date is before the start date; correct one of them."


@pytest.fixture
def rules_subject(personas, make_user):
    load_definitions([RULES], actor=SYSTEM)
    owner = make_user("rules_owner", is_staff=True)
    study = services.create_study(
        actor=owner, slug="rules", name="Rules", schedule=Schedule.objects.get(name="rules")
    )
    site = services.add_site(actor=owner, study=study, code="A", name="Site A")
    services.grant_role(actor=SYSTEM, study=study, user=owner, role="study_admin", sites=[])
    services.grant_role(
        actor=SYSTEM, study=study, user=personas["coordinator_a"], role="coordinator", sites=[site]
    )
    return services.enroll_subject(actor=owner, study=study, site=site, enrollment_date=dt.date(2025, 1, 1))


def save(personas, subject, **values):
    return save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="course",
        values=values,
    )


def test_a_stop_date_before_the_start_date_is_refused_with_the_rules_message_at_the_stop_date(
    personas, rules_subject
):
    with pytest.raises(RecordValidationError) as refused:
        save(personas, rules_subject, start_date="2025-03-10", stop_date="2025-03-05")
    assert refused.value.field_errors == {"stop_date": MESSAGE}
    record = save(personas, rules_subject, start_date="2025-03-10", stop_date="2025-03-10")
    assert record.data["stop_date"] == "2025-03-10"


def test_a_rule_that_reads_a_blank_or_a_missing_data_code_is_not_checked(personas, rules_subject):
    assert save(personas, rules_subject, start_date="2025-03-10").data == {"start_date": "2025-03-10"}
    record = save_record(
        actor=personas["coordinator_a"],
        subject=rules_subject,
        event_name="baseline",
        form_name="course",
        values={"start_date": "2025-03-10", "stop_date": "UNK"},
        expected_version=1,
    )
    assert record.data["stop_date"] == "UNK"


def test_imports_and_the_apis_get_the_rule_from_the_shared_validator(rules_subject):
    form = FormDefinition.objects.get(name="course")
    values = {"start_date": "2025-03-10", "stop_date": "2025-03-05"}
    _, errors = clean_values(form, values, missing_codes=set(), complete=False)
    assert errors == {"stop_date": MESSAGE}
    _, errors = FormValidator(form).clean(values, missing_codes=set(), complete=False)
    assert errors == {"stop_date": MESSAGE}


def test_the_entry_page_shows_the_message_at_the_field(client, personas, rules_subject):
    client.force_login(personas["coordinator_a"])
    url = reverse("records:entry", args=["rules", rules_subject.subject_id, "baseline", "course", 1])
    response = client.post(
        url, {"__version": "", "__status": "0", "start_date": "2025-03-10", "stop_date": "05-03-2025"}
    )
    html = response.content.decode()
    field = html[html.index('id="f-stop_date"') : html.index('id="f-first_dose"')]
    assert "the stop date is before the start date" in field


def test_the_loader_refuses_a_rule_it_cannot_check(tmp_path, db):
    (tmp_path / "elements.yaml").write_text((RULES / "elements.yaml").read_text())
    form = (RULES / "course.yaml").read_text()
    (tmp_path / "course.yaml").write_text(form.replace("[stop_date] >= [start_date]", "[stop_date] >= [end]"))
    with pytest.raises(DefinitionError) as refused:
        load_definitions([tmp_path], actor=SYSTEM)
    assert "end is not an item of form course@1.0" in str(refused.value)
    (tmp_path / "course.yaml").write_text(form.replace("[stop_date] >= [start_date]", "[stop_date] >= ("))
    with pytest.raises(DefinitionError) as refused:
        load_definitions([tmp_path], actor=SYSTEM)
    assert "rules[0].check" in str(refused.value)


def test_the_shipped_treatment_form_refuses_a_stop_before_the_start(db):
    load_definitions([settings.CAPTURE["DEFINITIONS_DIR"]], actor=SYSTEM)
    form = FormDefinition.objects.filter(name="treatment_history").order_by("-pk").first()
    values = {
        "treatment_type": "Surgery",
        "treatment_line": "primary",
        "treatment_start_date": "2025-03-10",
        "treatment_ongoing": "no",
        "treatment_stop_date": "2025-03-05",
    }
    _, errors = clean_values(form, values, missing_codes=set(), complete=False)
    assert "treatment_stop_date" in errors and "before the start date" in errors["treatment_stop_date"]
    _, errors = clean_values(
        form, {**values, "treatment_stop_date": "2025-04-01"}, missing_codes=set(), complete=False
    )
    assert errors == {}
