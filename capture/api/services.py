"""Record deletion, for the REDCap API's `content=record&action=delete`.

The records app has no delete yet; this follows its rules: one transaction, the
permission checked here, locked records refused, the deleted values kept in the audit
event (so the trail still shows what was there). If the records app gains a delete
service, call it from here instead.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from capture.audit.services import record_event
from capture.records.models import FormRecord
from capture.records.services import RecordLockedError
from capture.studies import access

# Deleting clinical data is not part of any data-entry role: only study administrators may.
DELETE_PERMISSION = "manage_study"


@transaction.atomic
def delete_record(*, actor, record: FormRecord, reason: str = "") -> None:
    subject = record.subject
    study = subject.study
    if not access.may_act_at_site(actor, DELETE_PERMISSION, study, subject.site):
        raise PermissionDenied(f"You may not delete records of {subject}; a study administrator can.")
    record = FormRecord.objects.select_for_update().select_related("event").get(pk=record.pk)
    if record.locked:
        raise RecordLockedError(record)
    label = str(record)
    snapshot = {"status": record.status, "version": record.version, "data": record.data}
    pk = record.pk
    record.delete()
    record_event(
        actor=actor,
        study=study,
        action="record.delete",
        object_type="record",
        object_id=pk,
        object_label=label,
        before=snapshot,
        reason=reason,
    )
