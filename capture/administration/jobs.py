"""The audit log page's "Verify chain", as a background job: verifying a large study's chain reads
every event (a million take minutes), which must not hold a web request. The audit page shows the
latest result (capture/jobs runs it; its page shows the progress)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from capture.audit.models import AuditChain
from capture.audit.services import chain_key, verify_chain
from capture.jobs import services as jobs
from capture.jobs.models import Job
from capture.studies import access

KIND = "audit_verify"
HANDLER = "capture.administration.jobs.verify_study_chain"
SHOWN_PROBLEMS = 100  # the page lists the first ones; the count says how many there are


def start_verification(*, actor, study) -> Job:
    """Queue a verification of the study's audit chain (for a reader of the audit trail)."""
    if not access.can(actor, "view_audit", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow reading its audit trail.")
    return jobs.start_job(
        actor=actor, study=study, kind=KIND, title=f"Verify the audit chain of {study.name}", handler=HANDLER
    )


def verify_study_chain(job: Job, progress) -> dict:
    """The job: verify_chain on the study's chain; the problems (the first ones) and their count."""
    study = job.study
    if not access.can(job.created_by, "view_audit", study):
        raise PermissionDenied(f"Your role in {study.name} no longer allows reading its audit trail.")
    key = chain_key(study)
    head = AuditChain.objects.filter(key=key).first()
    events = head.last_seq if head is not None else 0
    progress(0, events, f"Verifying {events} event(s)")
    problems = verify_chain(key)
    progress(events, events, "Verified")
    return {
        "events": events,
        "count": len(problems),
        "problems": [str(p) for p in problems[:SHOWN_PROBLEMS]],
        "verified_at": timezone.now().isoformat(),
    }


def latest_verification(user, study) -> Job | None:
    """The newest verification of the study's chain the user may see (their own, or any for a
    study administrator), for the audit page."""
    found = Job.objects.filter(study=study, kind=KIND).select_related("study").order_by("-created_at")
    if not access.can(user, "manage_study", study):
        found = found.filter(created_by=user)
    return found.first()
