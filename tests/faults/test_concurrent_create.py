"""Two users saving the same new record at the same moment (found while load-testing, issue 8).

Neither finds a row to lock, both insert, and the unique constraint stops the second: it must be
told of the edit conflict like any other late save, not fail with a server error.
"""

from __future__ import annotations

import threading
from collections import Counter

from django.db import connection

from capture.accounts.system import SYSTEM
from capture.records.services import EditConflictError, save_record
from capture.studies import services

from .procs import requires_postgres

pytestmark = requires_postgres
PAIRS = 8


def test_two_first_saves_of_one_record_give_one_save_and_one_conflict(study, personas, transactional_db):
    site = study.sites.get(code="A")
    outcomes: list[str] = []
    for _ in range(PAIRS):
        subject = services.enroll_subject(
            actor=SYSTEM, study=study, site=site, enrollment_date=study.created_at.date()
        )
        barrier = threading.Barrier(2)

        def save(age: str, subject=subject, barrier=barrier) -> None:
            barrier.wait()
            try:
                save_record(
                    actor=personas["coordinator_a"],
                    subject=subject,
                    event_name="baseline",
                    form_name="demographics",
                    values={"sex": "1", "age": age},
                )
                outcomes.append("saved")
            except EditConflictError:
                outcomes.append("conflict")
            except Exception as exc:  # noqa: BLE001 - what else happens is the finding
                outcomes.append(type(exc).__name__)
            finally:
                connection.close()  # this thread's own connection

        threads = [threading.Thread(target=save, args=(age,)) for age in ("30", "40")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert Counter(outcomes) == {"saved": PAIRS, "conflict": PAIRS}
