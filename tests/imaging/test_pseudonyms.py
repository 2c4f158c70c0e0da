import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured

from capture.accounts.system import SYSTEM
from capture.studies import pseudonyms, services


def test_it_hashes_an_identifier_the_same_way_each_time_and_ignores_dicom_padding(study):
    digest = pseudonyms.source_hash(study, "MRN-1001")
    assert digest == pseudonyms.source_hash(study, "MRN-1001 ")
    assert len(digest) == 64 and "MRN" not in digest


def test_it_gives_each_study_its_own_hashes(study, other_study):
    assert pseudonyms.source_hash(study, "MRN-1001") != pseudonyms.source_hash(other_study, "MRN-1001")
    assert pseudonyms.remap_uid(study, "1.2.3") != pseudonyms.remap_uid(other_study, "1.2.3")


def test_it_refuses_to_hash_an_empty_identifier(study):
    with pytest.raises(ValueError, match="empty"):
        pseudonyms.source_hash(study, "  ")


def test_it_remaps_uids_to_valid_stable_uids_under_2_25(study):
    uid = pseudonyms.remap_uid(study, "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid.replace(".", "").isdigit()
    assert uid == pseudonyms.remap_uid(study, "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")


def test_it_draws_date_shifts_of_0_to_364_days_back_deterministically(study):
    shifts = [pseudonyms.date_shift_days(study, f"A-{n:04d}") for n in range(400)]
    assert all(-364 <= s <= 0 for s in shifts)
    assert len(set(shifts)) > 200, "shifts should spread over the range"
    assert shifts == [pseudonyms.date_shift_days(study, f"A-{n:04d}") for n in range(400)]


def test_enrolment_stores_the_subjects_deterministic_shift(study, subjects):
    for subject in subjects.values():
        assert subject.date_shift_days == pseudonyms.date_shift_days(study, subject.subject_id)


def test_the_master_key_comes_from_the_environment(study, monkeypatch):
    # Under the test settings' key, computed without using it on this database (which would then
    # refuse any other key: tests/studies/test_keys.py).
    before = pseudonyms._mac(study, "source", "MRN-1", pseudonyms.configured_key()).hex()
    monkeypatch.setenv("CAPTURE_PSEUDONYM_KEY", "a-long-random-deployment-secret")
    assert pseudonyms.configured_key() == b"a-long-random-deployment-secret"
    assert pseudonyms.source_hash(study, "MRN-1") != before


def test_production_without_a_master_key_stops_with_a_hint(study, settings, monkeypatch):
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY", raising=False)
    settings.PSEUDONYM_KEY_REQUIRED = True
    with pytest.raises(ImproperlyConfigured, match="CAPTURE_PSEUDONYM_KEY"):
        pseudonyms.source_hash(study, "MRN-1")
    with pytest.raises(ImproperlyConfigured):
        services.enroll_subject(
            actor=SYSTEM, study=study, site=study.sites.first(), enrollment_date=dt.date(2025, 3, 1)
        )
