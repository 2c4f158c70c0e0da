"""The bulk write path obeys the record service's rules: same validation, permissions, audit chain."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction

from capture.audit.services import chain_key, verify_chain
from capture.definitions.models import EventForm
from capture.records.bulk import FormValidator, RecordWrite, write_records
from capture.records.models import FormRecord
from capture.records.validation import clean_values

SAMPLES = [
    {"sex": "1", "age": "54", "weight": "70.50", "smoker": "yes", "symptoms": ["pain", "fatigue"]},
    {
        "sex": "3",
        "age": "fifty",
        "weight": "1.25",
        "smoker": "maybe",
        "symptoms": "pain,headache",
        "er_status": "x",
    },
    {"sex": "", "age": None, "initials": "ABCD", "unknown": 1},
    {"sex": "UNK", "age": "NA", "receptors": "bad"},
    {},
]
LESIONS = [
    {"visit_date": "2025-01-02", "target_lesions": [{"lesion_site": "liver", "lesion_diameter": "12.5"}, {}]},
    {"visit_date": "02/01/2025", "target_lesions": [{"lesion_site": "x", "bogus": 1}] * 4},
    {"target_lesions": "nope"},
]


@pytest.mark.parametrize("complete", [False, True])
def test_form_validator_agrees_with_clean_values(study, complete):
    codes = study.missing_code_set()
    for form_name, samples in (("demographics", SAMPLES), ("lesions", LESIONS)):
        form = EventForm.objects.filter(form__name=form_name).first().form
        validator = FormValidator(form)
        for values in samples * 2:  # the second round answers from the validator's memo
            expected = clean_values(form, values, missing_codes=codes, complete=complete)
            assert validator.clean(values, missing_codes=codes, complete=complete) == expected, values


def _write(subject, age):
    ef = EventForm.objects.get(event__arm=subject.arm, event__name="baseline", form__name="demographics")
    return RecordWrite(
        subject=subject,
        event=ef.event,
        form=ef.form,
        form_name="demographics",
        instance=1,
        data={"age": age},
        status=0,
    )


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_run_outside_a_transaction(study, personas, subjects):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        write_records(actor=personas["data_manager"], study=study, writes=[_write(subjects["a"], 1)])


def test_it_refuses_subjects_at_sites_the_actor_does_not_work_at(study, personas, subjects):
    with pytest.raises(PermissionDenied, match="You may not enter data for B-0001"), transaction.atomic():
        write_records(actor=personas["coordinator_a"], study=study, writes=[_write(subjects["b"], 1)])
    with pytest.raises(PermissionDenied, match="does not allow entering data"), transaction.atomic():
        write_records(actor=personas["statistician"], study=study, writes=[_write(subjects["a"], 1)])
    assert FormRecord.objects.count() == 0


def test_its_audit_events_continue_the_studys_hash_chain(study, personas, subjects):
    with transaction.atomic():
        result = write_records(
            actor=personas["coordinator_a"], study=study, writes=[_write(subjects["a"], 40)], reason="bulk"
        )
    assert (result.created, result.updated) == (1, 0)
    record = FormRecord.objects.get()
    update = _write(subjects["a"], 41)
    update.existing_id, update.existing_version = record.pk, record.version
    with transaction.atomic():
        write_records(actor=personas["coordinator_a"], study=study, writes=[update])
    record.refresh_from_db()
    assert record.version == 2 and record.data == {"age": 41}
    assert verify_chain(chain_key(study)) == []
