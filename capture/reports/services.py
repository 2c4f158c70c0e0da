"""Creating, changing and deleting a report: validated against the study, audited in the same
transaction (capture/audit). Who may do it is the caller's check (DEFINE_PERMISSION)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from capture.accounts.system import require_actor, user_or_none
from capture.api.redcap.project import Project
from capture.audit.services import record_event

from .models import Report
from .rows import check_definition

# Reports are defined by the roles that manage the data (study administrator, data manager): no
# permission of their own yet, so the one those two roles alone hold that is about the data's
# handling. Everyone who sees the study may open a report.
DEFINE_PERMISSION = "import_data"


def _validate(report: Report) -> None:
    report.name = report.name.strip()
    report.filter_logic = report.filter_logic.strip()
    problems = []
    if not report.name:
        problems.append("Give the report a name.")
    elif Report.objects.filter(study=report.study, name=report.name).exclude(pk=report.pk).exists():
        problems.append(f"The study has a report named {report.name!r} already: choose another name.")
    problems += check_definition(
        Project(report.study), report.fields, report.events, report.filter_logic, report.sort_field
    )
    if problems:
        raise ValidationError(problems)


def save_report(*, actor, report: Report) -> Report:
    """Create or change `report` (its study set); refused with every problem found."""
    require_actor(actor)
    with transaction.atomic():
        before = None
        if report.pk:
            before = Report.objects.select_for_update().get(pk=report.pk, study=report.study).definition()
        _validate(report)
        created = report.pk is None
        if created:
            report.created_by = user_or_none(actor)
        report.save()
        record_event(
            actor=actor,
            action="report.create" if created else "report.update",
            object_type="report",
            object_id=report.pk,
            object_label=report.name,
            study=report.study,
            before=before,
            after=report.definition(),
        )
    return report


def delete_report(*, actor, report: Report) -> None:
    require_actor(actor)
    with transaction.atomic():
        record_event(
            actor=actor,
            action="report.delete",
            object_type="report",
            object_id=report.pk,
            object_label=report.name,
            study=report.study,
            before=report.definition(),
        )
        report.delete()
