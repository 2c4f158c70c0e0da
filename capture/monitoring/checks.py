"""Running the data quality rules over a study, and what a data manager does with a finding.

`run_checks` reads every record of the study once (subject by subject, in id order), runs each
form version's prepared checks (rules.FormChecks) and stores the findings as Discrepancy rows:
a finding seen before keeps its row (and its exclusion or query), one no longer found goes.
It is the background job's work (jobs.py) and the nightly command's.

`exclude` (with a reason, audited) and `raise_query` (one click: a query on the field with the
finding as its question) act on one discrepancy; `save_rule` adds a custom rule from the web.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from capture.audit.services import record_event
from capture.definitions.expressions import ExpressionError
from capture.definitions.models import Event, FormDefinition
from capture.records import services as records
from capture.records.compiled import compiled
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies.models import Subject

from . import response_check
from .models import Discrepancy, QualityRule, QualityRun
from .rules import CustomRule, Finding, FormChecks

MANAGE = "verify_data"  # who runs checks, writes rules, excludes findings and raises queries
CHUNK = 2000
SUBJECTS_AT_ONCE = 100  # ~3,200 records of 8 events × 4 forms a query, by the subject index
# Progress is a write (a commit) the job page reads every second or so: not more often than this.
PROGRESS_EVERY_S = 1.0


def custom_rules(study) -> dict[str, list[CustomRule]]:
    """The study's active web rules by form name (the definitions' rules are per form version)."""
    by_form: dict[str, list[CustomRule]] = {}
    for rule in QualityRule.objects.filter(study=study, active=True):
        by_form.setdefault(rule.form_name, []).append(
            CustomRule.of(rule.name, rule.title, rule.expression, rule.field)
        )
    return by_form


def _checks_for(form: FormDefinition, web: dict[str, list[CustomRule]], missing) -> FormChecks:
    own = [
        CustomRule.of(r["name"], r["title"], r["expression"], r.get("field") or "")
        for r in form.spec.get("data_quality", ())
    ]
    return FormChecks(compiled(form), own + web.get(form.name, []), missing)


def find(study, progress: Callable[[int, int], None] | None = None) -> tuple[int, dict[tuple, Finding]]:
    """(records checked, findings by (record id, rule, field)); reads, writes nothing."""
    records = FormRecord.objects.filter(subject__study=study)
    total = records.count()
    web = custom_rules(study)
    missing = frozenset(study.missing_code_set())
    forms = {f.pk: f for f in FormDefinition.objects.filter(pk__in=records.values("form_id").distinct())}
    checks = {pk: _checks_for(form, web, missing) for pk, form in forms.items()}
    wants_events = any(c.custom or c.c.events_read for c in checks.values())
    event_names = dict(Event.objects.values_list("pk", "name"))  # a small table: every schedule's
    findings: dict[tuple, Finding] = {}
    done, reported = 0, time.monotonic()
    for subject_rows in _by_subject(study):
        events = _events(subject_rows, event_names) if wants_events else None
        for pk, _subject, event_id, _instance, form_id, data in subject_rows:
            same_event = events.get(event_names[event_id]) if events else None
            for f in checks[form_id].run(data, events, same_event):
                findings[(pk, f.rule, f.field)] = f
        done += len(subject_rows)
        if progress is not None and time.monotonic() - reported >= PROGRESS_EVERY_S:
            progress(done, total)
            reported = time.monotonic()
    findings.update(response_check.find(study))  # the computed responses against the readers' (issue 17)
    return done, findings


def _by_subject(study):
    """Each subject's records as (pk, subject, event, instance, form, data) rows, read a batch of
    subjects at a time by the records' subject index, in subject order, and streamed: one
    subject's records are held at once. A batch's order is the index's (SQLite) or a sort of that
    batch alone; never an ORDER BY over the study, which sorts every record's JSON (a temporary
    B-tree on SQLite) before the first row comes. Holding a whole batch cost ~15 % of a run in
    garbage collections of its 8,000 live records."""
    ids = list(Subject.objects.filter(study=study).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), SUBJECTS_AT_ONCE):
        found = FormRecord.objects.filter(subject_id__in=ids[start : start + SUBJECTS_AT_ONCE]).order_by(
            "subject_id"
        )
        rows: list[tuple] = []
        for row in found.values_list("pk", "subject_id", "event_id", "instance", "form_id", "data").iterator(
            CHUNK
        ):
            if rows and row[1] != rows[0][1]:
                yield rows
                rows = []
            rows.append(row)
        if rows:
            yield rows


def _events(rows, names: dict[int, str]) -> dict[str, dict]:
    # Each event's forms merged; of a repeating form the first instance counts (as other_events).
    events: dict[str, dict] = {}
    for _pk, _subject, event_id, _instance, _form, data in sorted(rows, key=lambda r: -r[3]):
        events.setdefault(names[event_id], {}).update(data)
    return events


def run_checks(*, actor, study, job=None, progress=None) -> QualityRun:
    """Run every rule over the study and store what is found (see the module docstring)."""
    if not access.can(actor, MANAGE, study):
        raise PermissionDenied("Your role may not run data quality checks.")
    run = QualityRun.objects.create(study=study, job=job)
    checked, findings = find(study, progress)
    with transaction.atomic():
        _store(study, findings)
        run.finished_at, run.records, run.found = timezone.now(), checked, len(findings)
        run.save(update_fields=["finished_at", "records", "found"])
        record_event(
            actor=actor,
            study=study,
            action="data_quality.run",
            object_type="study",
            object_id=study.pk,
            object_label=study.name,
            after={"records": checked, "found": len(findings)},
        )
    return run


def _store(study, findings: dict[tuple, Finding]) -> None:
    kept, stale = set(), []
    for pk, rec, rule, field in Discrepancy.objects.filter(study=study).values_list(
        "pk", "record_id", "rule", "field"
    ):
        if (rec, rule, field) in findings:
            kept.add((rec, rule, field))
        else:
            stale.append(pk)
    for start in range(0, len(stale), CHUNK):
        Discrepancy.objects.filter(pk__in=stale[start : start + CHUNK]).delete()
    Discrepancy.objects.bulk_create(
        [
            Discrepancy(study=study, record_id=key[0], rule=f.rule, field=f.field, message=f.message)
            for key, f in findings.items()
            if key not in kept
        ],
        batch_size=CHUNK,
    )


def visible(user, study):
    """The study's discrepancies on subjects the user sees."""
    return Discrepancy.objects.filter(
        study=study, record__subject__in=access.subjects_visible_to(user, study)
    ).select_related("record__subject__site", "record__event", "record__form", "query")


def _require_manager(actor, discrepancy: Discrepancy) -> None:
    subject = discrepancy.record.subject
    if not access.may_act_at_site(actor, MANAGE, subject.study, subject.site):
        raise PermissionDenied("Your role may not act on data quality findings.")


@transaction.atomic
def exclude(*, actor, discrepancy: Discrepancy, reason: str) -> Discrepancy:
    """Exclude a finding from the list (it is right after all), with a reason kept in the audit."""
    _require_manager(actor, discrepancy)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Give a reason to exclude this finding; it is kept in the audit trail.")
    discrepancy.excluded, discrepancy.excluded_reason = True, reason
    discrepancy.excluded_by, discrepancy.excluded_at = actor, timezone.now()
    discrepancy.save(update_fields=["excluded", "excluded_reason", "excluded_by", "excluded_at"])
    record_event(
        actor=actor,
        study=discrepancy.study,
        action="data_quality.exclude",
        object_type="record",
        object_id=discrepancy.record_id,
        object_label=str(discrepancy.record),
        after={"rule": discrepancy.rule, "field": discrepancy.field},
        reason=reason,
    )
    return discrepancy


@transaction.atomic
def raise_query(*, actor, discrepancy: Discrepancy):
    """A query on the finding's field, its message as the question (records.open_query audits)."""
    _require_manager(actor, discrepancy)
    if discrepancy.query_id is not None:
        return discrepancy.query
    field = discrepancy.field
    if not field:
        raise ValidationError("This rule names no field; open a query from the form instead.")
    query = records.open_query(actor=actor, record=discrepancy.record, field=field, text=discrepancy.message)
    discrepancy.query = query
    discrepancy.save(update_fields=["query"])
    return query


@transaction.atomic
def save_rule(
    *, actor, study, name: str, title: str, form_name: str, expression: str, field: str = ""
) -> QualityRule:
    """Add (or replace) a custom rule; it must parse and name a form of the study."""
    if not access.can(actor, MANAGE, study):
        raise PermissionDenied("Your role may not write data quality rules.")
    form = FormDefinition.objects.filter(
        name=form_name, event_forms__event__arm__schedule=study.schedule
    ).first()
    if form is None:
        raise ValidationError(f"{form_name!r} is not a form of this study; pick one from the list.")
    try:
        CustomRule.of(name, title, expression, field)
    except ExpressionError as error:
        raise ValidationError(f"The expression does not parse: {error}") from None
    if field and field not in compiled(form).rules:
        raise ValidationError(f"{field!r} is not a field of {form.title}.")
    rule, _ = QualityRule.objects.update_or_create(
        study=study,
        name=name,
        defaults={
            "title": title,
            "form_name": form_name,
            "expression": expression,
            "field": field,
            "active": True,
            "created_by": actor,
        },
    )
    record_event(
        actor=actor,
        study=study,
        action="data_quality.rule",
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        after={"name": name, "form": form_name, "expression": expression},
    )
    return rule
