"""Batch enrolment (issue 13, the migration benchmark): `enroll_subjects` enrols many subjects
under exactly `enroll_subject`'s rules (one-by-one and batch give the same subjects, ids, date
shifts and audit events), and one refused subject refuses the whole batch."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from capture.accounts.system import SYSTEM
from capture.audit.models import AuditEvent
from capture.audit.services import chain_key, verify_chain
from capture.studies import services
from capture.studies.models import Study, Subject
from capture.studies.services import EnrolRequest

WHEN = dt.date(2025, 3, 1)


class _UndoError(Exception):
    pass


def _sites(study):
    return {s.code: s for s in study.sites.all()}


def _enrolment_example(study):
    """A patient at A, two at B, an animal at A, another patient at A: hand-written."""
    sites = _sites(study)
    return [
        EnrolRequest(sites["A"], WHEN),
        EnrolRequest(sites["B"], WHEN),
        EnrolRequest(sites["B"], dt.date(2025, 3, 2)),
        EnrolRequest(sites["A"], WHEN, kind=Subject.ANIMAL, model_type="PDX"),
        EnrolRequest(sites["A"], WHEN),
    ]


def _outcome(study, subjects):
    rows = [
        (s.subject_id, s.site.code, s.seq, s.kind, s.arm.name, s.enrollment_date, s.date_shift_days)
        for s in Subject.objects.filter(pk__in=[s.pk for s in subjects]).order_by("pk")
    ]
    by_pk = {str(s.pk): s.subject_id for s in subjects}
    events = [
        (e.action, e.object_type, by_pk[e.object_id], e.object_label, e.after, e.reason)
        for e in AuditEvent.objects.filter(
            chain=chain_key(study), action="subject.enroll", object_id__in=by_pk
        ).order_by("seq")
    ]
    return rows, events


def _one_by_one(study, actor, requests, reason):
    """What enroll_subject gives for each request in turn, then undone."""
    try:
        with transaction.atomic():
            subjects = [
                services.enroll_subject(
                    actor=actor,
                    study=study,
                    site=r.site,
                    enrollment_date=r.enrollment_date,
                    kind=r.kind,
                    arm=r.arm,
                    derived_from=r.derived_from,
                    model_type=r.model_type,
                    subject_id=r.subject_id,
                    reason=reason,
                )
                for r in requests
            ]
            found = _outcome(study, subjects)
            raise _UndoError
    except _UndoError:
        pass
    return found


def test_a_batch_gives_the_subjects_ids_shifts_and_audit_events_of_one_by_one(study, personas):
    admin = personas["admin"]
    services.enroll_subject(actor=admin, study=study, site=_sites(study)["A"], enrollment_date=WHEN)
    expected = _one_by_one(study, admin, _enrolment_example(study), "screening")
    subjects = services.enroll_subjects(
        actor=admin, study=study, requests=_enrolment_example(study), reason="screening"
    )
    rows, events = _outcome(study, subjects)
    assert [row[:5] for row in rows] == [
        ("A-0002", "A", 2, "patient", rows[0][4]),
        ("B-0001", "B", 1, "patient", rows[1][4]),
        ("B-0002", "B", 2, "patient", rows[2][4]),
        ("A-0003", "A", 3, "animal", rows[3][4]),
        ("A-0004", "A", 4, "patient", rows[4][4]),
    ]
    assert rows[3][4] != rows[0][4]  # the animal joins the animal arm
    assert (rows, events) == expected
    assert [e[0] for e in events] == ["subject.enroll"] * 5
    assert events[1][4] == {
        "subject_id": "B-0001",
        "site": "B",
        "arm": rows[1][4],
        "kind": "patient",
        "derived_from": None,
        "model_type": "",
        "enrollment_date": "2025-03-01",
    }
    assert verify_chain(chain_key(study)) == []


def test_a_batch_of_given_ids_in_a_study_that_keeps_source_ids(basic_definitions, make_user):
    owner = make_user("keeper", is_staff=True)
    kept = services.create_study(
        actor=owner, slug="kept", name="Kept", schedule=basic_definitions, subject_ids=Study.SOURCE_IDS
    )
    site = services.add_site(actor=owner, study=kept, code="N", name="North")
    services.grant_role(actor=SYSTEM, study=kept, user=owner, role="study_admin")
    requests = [EnrolRequest(site, WHEN, subject_id=rid) for rid in ("101", "7", "a-3")]
    expected = _one_by_one(kept, owner, requests, "")
    subjects = services.enroll_subjects(actor=owner, study=kept, requests=requests)
    assert [s.subject_id for s in subjects] == ["101", "7", "a-3"]
    assert [s.seq for s in subjects] == [1, 2, 3]
    assert _outcome(kept, subjects) == expected


def test_a_second_batch_of_given_ids_numbers_on_from_each_sites_last(basic_definitions, make_user):
    owner = make_user("keeper", is_staff=True)
    kept = services.create_study(
        actor=owner, slug="kept", name="Kept", schedule=basic_definitions, subject_ids=Study.SOURCE_IDS
    )
    north = services.add_site(actor=owner, study=kept, code="N", name="North")
    south = services.add_site(actor=owner, study=kept, code="S", name="South")
    services.grant_role(actor=SYSTEM, study=kept, user=owner, role="study_admin")
    first = [EnrolRequest(north, WHEN, subject_id=rid) for rid in ("1", "2")] + [
        EnrolRequest(south, WHEN, subject_id="3")
    ]
    services.enroll_subjects(actor=owner, study=kept, requests=first)
    second = [
        EnrolRequest(south, WHEN, subject_id="x"),
        EnrolRequest(north, WHEN, subject_id="y"),
        EnrolRequest(south, WHEN, subject_id="z"),
    ]
    subjects = services.enroll_subjects(actor=owner, study=kept, requests=second)
    # Each site numbers on from its own last subject (North had 1, 2; South had 1), as enroll_subject does.
    assert [(s.subject_id, s.site.code, s.seq) for s in subjects] == [
        ("x", "S", 2),
        ("y", "N", 3),
        ("z", "S", 3),
    ]
    assert verify_chain(chain_key(kept)) == []


def _nothing_written(study, before_events):
    return Subject.objects.filter(study=study).count() == 0 and (
        AuditEvent.objects.filter(chain=chain_key(study)).count() == before_events
    )


def test_a_site_the_actor_may_not_enrol_at_refuses_the_whole_batch(study, personas):
    events = AuditEvent.objects.filter(chain=chain_key(study)).count()
    sites = _sites(study)
    requests = [EnrolRequest(sites["A"], WHEN), EnrolRequest(sites["B"], WHEN)]
    with pytest.raises(PermissionDenied, match="You may not enrol subjects at site B."):
        services.enroll_subjects(actor=personas["coordinator_a"], study=study, requests=requests)
    assert _nothing_written(study, events)


def test_a_retired_site_refuses_the_whole_batch(study, personas):
    admin = personas["admin"]
    sites = _sites(study)
    services.retire_site(actor=admin, study=study, site=sites["B"])
    events = AuditEvent.objects.filter(chain=chain_key(study)).count()
    requests = [EnrolRequest(sites["A"], WHEN), EnrolRequest(sites["B"], WHEN)]
    with pytest.raises(ValidationError, match="Site B is retired: it takes no new subjects."):
        services.enroll_subjects(actor=admin, study=study, requests=requests)
    assert _nothing_written(study, events)


def test_a_taken_id_refuses_the_whole_batch(basic_definitions, make_user):
    owner = make_user("keeper", is_staff=True)
    kept = services.create_study(
        actor=owner, slug="kept", name="Kept", schedule=basic_definitions, subject_ids=Study.SOURCE_IDS
    )
    site = services.add_site(actor=owner, study=kept, code="N", name="North")
    services.grant_role(actor=SYSTEM, study=kept, user=owner, role="study_admin")
    services.enroll_subject(actor=owner, study=kept, site=site, enrollment_date=WHEN, subject_id="101")
    events = AuditEvent.objects.filter(chain=chain_key(kept)).count()
    for ids in (["102", "101"], ["102", "103", "102"]):
        requests = [EnrolRequest(site, WHEN, subject_id=rid) for rid in ids]
        with pytest.raises(ValidationError, match=f"Subject '{ids[-1]}' exists already in Kept."):
            services.enroll_subjects(actor=owner, study=kept, requests=requests)
        assert list(Subject.objects.filter(study=kept).values_list("subject_id", flat=True)) == ["101"]
        assert AuditEvent.objects.filter(chain=chain_key(kept)).count() == events


def test_a_given_id_in_a_pattern_study_refuses_the_whole_batch(study, personas):
    events = AuditEvent.objects.filter(chain=chain_key(study)).count()
    sites = _sites(study)
    requests = [EnrolRequest(sites["A"], WHEN), EnrolRequest(sites["A"], WHEN, subject_id="X-1")]
    with pytest.raises(ValidationError, match="generates subject ids from its pattern"):
        services.enroll_subjects(actor=personas["admin"], study=study, requests=requests)
    assert _nothing_written(study, events)


def test_a_batch_skips_an_id_a_subject_moved_away_keeps(study, personas):
    admin = personas["admin"]
    sites = _sites(study)
    first = services.enroll_subject(actor=admin, study=study, site=sites["A"], enrollment_date=WHEN)
    services.move_subject(actor=admin, study=study, subject=first, site=sites["B"], reason="moved")
    subjects = services.enroll_subjects(
        actor=admin, study=study, requests=[EnrolRequest(sites["A"], WHEN), EnrolRequest(sites["A"], WHEN)]
    )
    assert [(s.subject_id, s.seq) for s in subjects] == [("A-0002", 2), ("A-0003", 3)]


def test_a_batch_takes_a_number_of_queries_that_does_not_grow_with_its_size(
    study, personas, django_assert_max_num_queries
):
    sites = _sites(study)
    requests = [EnrolRequest(sites["AB"[n % 2]], WHEN) for n in range(40)]
    with django_assert_max_num_queries(20):
        subjects = services.enroll_subjects(actor=personas["admin"], study=study, requests=requests)
    assert len(subjects) == 40


def test_each_subject_of_a_batch_gets_its_shift_from_the_study_secret_and_its_id(study, personas, settings):
    """The shift as pseudonyms.py states it, worked here with hmac itself: HMAC-SHA256 of
    "date-shift:<id>" under HMAC-SHA256(master key, "study:<slug>"), its first 8 bytes mod 365, back."""
    sites = _sites(study)
    requests = [
        EnrolRequest(sites["A"], WHEN),
        EnrolRequest(sites["B"], WHEN),
        EnrolRequest(sites["A"], WHEN),
    ]
    subjects = services.enroll_subjects(actor=personas["admin"], study=study, requests=requests)
    secret = hmac.new(settings.PSEUDONYM_KEY, b"study:trial", hashlib.sha256).digest()
    for subject in subjects:
        digest = hmac.new(secret, f"date-shift:{subject.subject_id}".encode(), hashlib.sha256).digest()
        expected = -(int.from_bytes(digest[:8], "big") % 365)
        stored = Subject.objects.get(pk=subject.pk)
        assert (subject.date_shift_days, stored.date_shift_days) == (expected, expected), subject.subject_id
        assert (stored.subject_id, stored.created_at) == (subject.subject_id, subject.created_at)
