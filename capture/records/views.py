"""Data entry, field history, locking, e-signature and queries.

Every view first asks capture.studies.access for the study and subject (404 without access,
403 for a role that may not act), then calls a function of services.py; nothing here writes.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from capture.audit.models import AuditEvent
from capture.studies import access
from capture.studies.disclosure import Disclosure

from . import entry, navigation, services
from .compiled import compiled
from .entry_page import DEIDENTIFIED_READ_ONLY, EntryPage, as_int, find_record
from .models import FormRecord, Query


def _open(request, slug: str, subject_id: str, event: str, form: str):
    """The user's access to the study (404 if they may not see it or the subject), the subject
    and the slot of the form; permissions are read once here for the rest of the request."""
    study_access = access.study_access(request.user, slug)
    subject = study_access.get_subject(subject_id)
    try:
        slot = services.resolve_slot(subject, event, form)
    except ValidationError:
        raise Http404("This form is not collected at this event for this subject.") from None
    return study_access, subject, slot


def _slot(request, slug: str, subject_id: str, event: str, form: str):
    study_access, subject, slot = _open(request, slug, subject_id, event, form)
    return study_access.study, subject, slot


def _entry_url(study, subject, event, form, instance) -> str:
    return reverse(
        "records:entry",
        kwargs={
            "slug": study.slug,
            "subject_id": subject.subject_id,
            "event": event,
            "form": form,
            "instance": instance,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@access.request_cache  # the record service's own checks reuse what the page has read
def entry_page(request, slug, subject_id, event, form, instance):
    """One form of one subject at one event: shown to whoever sees the subject, saved by a role
    that may enter data and sees identifiers (records.entry_page decides both)."""
    study_access, subject, slot = _open(request, slug, subject_id, event, form)
    if request.method != "POST":
        page = EntryPage(request.user, study_access, subject, slot, form, instance)
        return render(request, "records/entry.html", page.context())
    # One transaction from reading the record (locked) to saving it: the record is read once.
    with transaction.atomic():
        page = EntryPage(request.user, study_access, subject, slot, form, instance, lock=True)
        saved = page.submit(request.POST, request.FILES)
    if saved is not None:
        messages.success(request, f"Saved {saved.form.title} (version {saved.version}).")
        go = navigation.after_save(
            request.POST.get("__next", ""), request.user, subject, slot.event, form, instance
        )
        if go.note:
            messages.info(request, go.note)
        return redirect(go.url)
    return render(request, "records/entry.html", page.context())


def _refuse_deidentified_writes(user, study) -> None:
    """The entry pages are read-only for a user who sees the study de-identified (403)."""
    if not Disclosure.for_user(user, study).identified:
        raise PermissionDenied(DEIDENTIFIED_READ_ONLY)


@login_required
def add_instance(request, slug, subject_id, event, form):
    """A new instance of a repeating form: the next number, opened empty."""
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    if not slot.event_form.repeating:
        raise Http404("This form does not repeat here.")
    if not access.may_act_at_site(request.user, "enter_data", study, subject.site):
        raise PermissionDenied("Your role may not enter data.")
    _refuse_deidentified_writes(request.user, study)
    last = FormRecord.objects.filter(subject=subject, event=slot.event, form_name=form).aggregate(
        m=Max("instance")
    )
    return redirect(_entry_url(study, subject, event, form, (last["m"] or 0) + 1))


@login_required
@require_POST
def delete_instance(request, slug, subject_id, event, form, instance):
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    _refuse_deidentified_writes(request.user, study)
    try:
        services.delete_instance(actor=request.user, record=record, reason=request.POST.get("reason", ""))
    except (ValidationError, services.RecordLockedError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect(_entry_url(study, subject, event, form, instance))
    messages.success(request, f"Removed {form} #{instance}.")
    return redirect("web:subject", slug=study.slug, subject_id=subject.subject_id)


@login_required
def field_history(request, slug, subject_id, event, form, instance, field):
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    c = compiled(record.form)
    if field not in c.rules and field not in c.repeating:
        raise Http404("No such field.")
    disclosure = Disclosure.for_user(request.user, study)

    def shown(value) -> str:
        if value is None:
            return entry.shown(c, key, "")
        return entry.shown(
            c, key, entry.disclosed(c, disclosure, subject, key, entry.display_item(c, key, value))
        )

    group = c.grouped.get(field)
    key = group or field
    rows = []
    events = AuditEvent.objects.filter(object_type="record", object_id=str(record.pk)).order_by("seq")
    for ev in events:
        if ev.action == "record.create":
            before, after = None, (ev.after or {}).get("data", {}).get(key)
            if after is None:
                continue
        elif ev.action == "record.update":
            if key not in (ev.after or {}) and key not in (ev.before or {}):
                continue
            before, after = (ev.before or {}).get(key), (ev.after or {}).get(key)
        else:
            continue
        rows.append(
            {
                "who": ev.actor_label,
                "when": disclosure.timestamp(subject, ev.timestamp),
                "before": shown(before),
                "after": shown(after),
                "reason": ev.reason,
                "action": "created" if ev.action == "record.create" else "changed",
            }
        )
    label = c.rules[field].label if field in c.rules else field
    return render(
        request,
        "records/history.html",
        {
            "study": study,
            "subject": subject,
            "record": record,
            "field": field,
            "label": label,
            "rows": rows,
            "entry_url": _entry_url(study, subject, event, form, instance),
        },
    )


@login_required
@require_POST
def lock_record(request, slug, subject_id, event, form, instance):
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    if not access.may_act_at_site(request.user, "lock_records", study, subject.site):
        raise PermissionDenied("Your role may not lock records.")
    locking = request.POST.get("action") == "lock"
    try:
        services.set_record_lock(
            actor=request.user, record=record, locked=locking, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Form locked." if locking else "Form unlocked.")
    return redirect(_entry_url(study, subject, event, form, instance))


@login_required
@require_POST
def lock_subject(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id, "lock_records")
    locking = request.POST.get("action") == "lock"
    try:
        services.set_subject_lock(
            actor=request.user, subject=subject, locked=locking, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{subject} locked." if locking else f"{subject} unlocked.")
    return redirect("web:subject", slug=study.slug, subject_id=subject.subject_id)


@login_required
@require_http_methods(["GET", "POST"])
def sign_record(request, slug, subject_id, event, form, instance):
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    if not services.may_sign(request.user, subject):
        raise PermissionDenied("Only the study's principal investigator may sign records.")
    error = ""
    if request.method == "POST":
        try:
            services.sign_record(actor=request.user, record=record, password=request.POST.get("password", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"Signed {record.form.title} (version {record.version}).")
            return redirect(_entry_url(study, subject, event, form, instance))
    return render(
        request,
        "records/sign.html",
        {
            "study": study,
            "subject": subject,
            "record": record,
            "error": error,
            "meaning": services.SIGNATURE_MEANING,
            "entry_url": _entry_url(study, subject, event, form, instance),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def query_new(request, slug, subject_id, event, form, instance):
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    if not access.may_act_at_site(request.user, "verify_data", study, subject.site):
        raise PermissionDenied("Your role may not raise queries.")
    field = request.POST.get("field") or request.GET.get("field", "")
    c = compiled(record.form)
    if field and field not in c.rules:
        raise Http404("No such field.")
    # Without a field (the "Raise a query" link of the form names one), the page asks which.
    choices = [(name, rule.label) for name, rule in c.rules.items() if name not in c.grouped]
    error = ""
    if request.method == "POST":
        try:
            query = services.open_query(
                actor=request.user, record=record, field=field, text=request.POST.get("text", "")
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, "Query opened; the site sees it on the form and in the query list.")
            return redirect("records:query", slug=study.slug, pk=query.pk)
    return render(
        request,
        "records/query_new.html",
        {
            "study": study,
            "subject": subject,
            "record": record,
            "field": field,
            "label": c.rules[field].label if field else "",
            "value": _current_value(Disclosure.for_user(request.user, study), c, record, field)
            if field
            else "",
            "choices": choices,
            "error": error,
            "entry_url": _entry_url(study, subject, event, form, instance),
        },
    )


def _current_value(disclosure: Disclosure, c, record: FormRecord, field: str) -> str:
    """The stored value a query names, in words, as this user may see it (masked, shifted).
    `field` is an item, or `group[n].item` for a row of a repeating group."""
    value, name = record.data.get(field), field
    if "[" in field:
        group, _, rest = field.partition("[")
        index, _, name = rest.partition("].")
        rows = record.data.get(group) or []
        n = as_int(index, 0)
        value = rows[n - 1].get(name) if 0 < n <= len(rows) and isinstance(rows[n - 1], dict) else None
    shown = entry.disclosed(c, disclosure, record.subject, name, entry.display(value))
    return entry.shown(c, name, shown)


def _visible_queries(user, study):
    return Query.objects.filter(record__subject__in=access.subjects_visible_to(user, study))


@login_required
@require_http_methods(["GET", "POST"])
def query_detail(request, slug, pk):
    study = access.get_study(request.user, slug)
    query = get_object_or_404(
        _visible_queries(request.user, study).select_related(
            "record__subject__site", "record__event", "record__form"
        ),
        pk=pk,
    )
    record = query.record
    subject = record.subject
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        text = request.POST.get("text", "")
        try:
            if action not in (Query.ANSWER, Query.CLOSE, Query.REOPEN):
                raise ValidationError("Choose answer, close or reopen.")
            services.move_query(actor=request.user, query=query, action=action, text=text)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return redirect("records:query", slug=study.slug, pk=query.pk)
    c = compiled(record.form)
    name = query.field.split(".")[-1]
    disclosure = Disclosure.for_user(request.user, study)
    return render(
        request,
        "records/query.html",
        {
            "study": study,
            "subject": subject,
            "query": query,
            "record": record,
            "label": c.rules[name].label if name in c.rules else query.field,
            "value": _current_value(disclosure, c, record, query.field),
            "messages_list": [
                (message, disclosure.timestamp(subject, message.at))
                for message in query.messages.select_related("author")
            ],
            # Only what Query.TRANSITIONS allows this user in this state (never all three).
            "actions": query.actions_for(
                lambda p: access.may_act_at_site(request.user, p, study, subject.site)
            ),
            "error": error,
            "entry_url": _entry_url(study, subject, record.event.name, record.form_name, record.instance),
        },
    )


def _dated(user, study, queries) -> list[tuple[Query, object]]:
    """Each query with its last change as this user may see it (shifted with its subject's dates)."""
    disclosure = Disclosure.for_user(user, study)
    dated: list[tuple[Query, object]] = [
        (q, disclosure.timestamp(q.record.subject, q.updated_at)) for q in queries
    ]
    if not disclosure.identified:
        # In the order of the times shown: the real order would tell how subjects' shifts differ.
        dated.sort(key=lambda pair: (pair[1] is not None, pair[1]), reverse=True)
    return dated


@login_required
def record_queries(request, slug, subject_id, event, form, instance):
    """The queries of one record (the badge next to a field links here)."""
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    queries = record.queries.select_related("opened_by").order_by("-updated_at")
    field = request.GET.get("field")
    if field:
        queries = queries.filter(field=field)
    return render(
        request,
        "records/queries.html",
        {
            "study": study,
            "queries": _dated(
                request.user,
                study,
                queries.select_related("record__subject__site", "record__event", "record__form"),
            ),
            "record": record,
            "state": "all",
            "field": field,
            "entry_url": _entry_url(study, subject, event, form, instance),
        },
    )
