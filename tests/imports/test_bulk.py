"""The bulk write path obeys the record service's rules: same validation, permissions, audit chain."""

import json
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.audit.services import (
    NewEvent,
    append_events,
    canonical_json,
    chain_key,
    record_event,
    verify_chain,
)
from capture.definitions.models import EventForm
from capture.records.bulk import BLANK, FormValidator, RecordWrite, write_records
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


@pytest.mark.parametrize("complete", [False, True])
def test_cleaning_field_by_field_then_finishing_agrees_with_clean_values(study, complete):
    codes = study.missing_code_set()
    form = EventForm.objects.filter(form__name="demographics").first().form
    validator = FormValidator(form)
    for values in SAMPLES:
        clean, errors = {}, {}
        for name, value in values.items():
            cleaner = validator.cleaner(name, missing_codes=codes)
            if cleaner is None or name == "symptoms":  # not of the form / a list: the whole-record path
                continue
            cleaned, error = cleaner(value)
            if error is not None:
                errors[name] = error
            elif cleaned is not BLANK:
                clean[name] = cleaned
        known = {k: v for k, v in values.items() if k != "symptoms"}
        expected = clean_values(form, known, missing_codes=codes, complete=complete)
        assert validator.finish(known, clean, errors, missing_codes=codes, complete=complete) == expected


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


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_canonical_json_is_the_text_the_chain_hashes(value):
    # What json.dumps writes, except that a float from 1e16 up is written as the integer PostgreSQL's
    # jsonb gives back (tests/audit/test_chain.py checks the round trip).
    read_back = json.loads(
        json.dumps(value, cls=DjangoJSONEncoder),
        parse_float=lambda t: int(Decimal(t)) if "e+" in t else float(t),
    )
    expected = json.dumps(read_back, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    assert canonical_json(value, plain=True) == expected
    assert canonical_json(value) == expected


def test_events_appended_in_bulk_verify_like_events_recorded_one_by_one(study, personas):
    tricky = {
        "note": "Ünïcode ✓ {brace} %s",
        "small": 2.5e-05,
        "big": 123456789012345.6,
        "n": [1, 1.5, None, True],
    }
    with transaction.atomic():
        record_event(actor=SYSTEM, study=study, action="x.before", object_type="x", object_id=1)
        appended = append_events(
            actor=personas["data_manager"],
            study=study,
            reason="Import of {odd}.xlsx at 100%",
            batch=2,
            events=[
                NewEvent(
                    "x.create", "x", str(i), f"Ünï {{{i}}}", None, canonical_json({"data": tricky, "i": i})
                )
                for i in range(5)
            ]
            + [NewEvent("x.update", "x", "9", "label", canonical_json({"a": 1}), canonical_json({"a": 2.0}))],
        )
        record_event(actor=SYSTEM, study=study, action="x.after", object_type="x", object_id=2)
    assert appended == 6
    events = list(AuditEvent.objects.filter(chain=chain_key(study), object_type="x"))
    assert [e.action for e in events] == ["x.before"] + ["x.create"] * 5 + ["x.update", "x.after"]
    assert events[1].after == {"data": tricky, "i": 0} and events[6].before == {"a": 1}
    assert verify_chain(chain_key(study)) == []


def test_each_new_record_and_its_audit_event_name_the_same_row(study, personas, subjects):
    # Ids of an executemany's rows are not returned: the bulk path works them out (consecutive on SQLite).
    FormRecord.objects.create(
        subject=subjects["a"],
        event=_write(subjects["a"], 1).event,
        form=_write(subjects["a"], 1).form,
        form_name="demographics",
        instance=2,
        data={"age": 99},
    )
    third = _write(subjects["a"], 42)
    third.instance = 3
    writes = [_write(subjects["a"], 40), _write(subjects["b"], 41), third]
    with transaction.atomic():
        result = write_records(actor=personas["admin"], study=study, writes=writes, reason="bulk")
    events = AuditEvent.objects.filter(chain=chain_key(study), action="record.create").order_by("seq")
    by_event = {int(e.object_id): (e.object_label, e.after["data"]["age"]) for e in events}
    stored = {r.pk: (str(r), r.data["age"]) for r in FormRecord.objects.filter(pk__in=result.record_ids)}
    assert sorted(age for _, age in stored.values()) == [40, 41, 42]
    assert by_event == stored
