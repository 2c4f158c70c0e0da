"""Data entry, field history, locking, e-signature and queries.

Every view first asks capture.studies.access for the study and subject (404 without access,
403 for a role that may not act), then calls a function of services.py; nothing here writes.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import get_valid_filename
from django.views.decorators.http import require_http_methods, require_POST

from capture.audit.models import AuditEvent
from capture.studies import access
from capture.studies.disclosure import Disclosure

from . import entry, services
from .compiled import compiled
from .models import FormRecord, Query, Status, SubjectLock


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


def _record(subject, slot, form_name: str, instance: int) -> FormRecord | None:
    # Unique, so no ORDER BY (the Meta ordering would join subject, study, arm and schedule).
    open_queries = Query.objects.filter(record=OuterRef("pk")).exclude(status=Query.CLOSED)
    found = (
        FormRecord.objects.select_related("updated_by")
        .filter(subject=subject, event=slot.event, form_name=form_name, instance=instance)
        .annotate(has_open_queries=Exists(open_queries))
        .order_by()[:1]
    )
    record = next(iter(found), None)
    if record is not None:
        # Rows loaded already; a record of an older form version loads its own when asked.
        record.subject, record.event = subject, slot.event
        if record.form_id == slot.event_form.form_id:
            record.form = slot.event_form.form
    return record


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
    study_access, subject, slot = _open(request, slug, subject_id, event, form)
    study = study_access.study
    if instance < 1 or (instance > 1 and not slot.event_form.repeating):
        raise Http404("This form does not repeat here.")
    record = _record(subject, slot, form, instance)
    # The subject is visible, so its site is: `can` here means `access.may_act_at_site`.
    can = study_access.can
    disclosure = Disclosure.for_user(request.user, study)
    # A de-identified user sees shifted dates and no identifiers: whatever they sent back would
    # be those values, so the page never saves for them, whatever their role allows.
    deidentified_entry = can("enter_data") and not disclosure.identified
    can_edit = can("enter_data") and disclosure.identified
    if request.method == "POST" and not can_edit:
        if deidentified_entry:
            raise PermissionDenied(DEIDENTIFIED_READ_ONLY)
        raise PermissionDenied("Your role may read this form but not change it.")
    # The slot's form instance when it is the record's version, so that the record service
    # (given the slot) compiles the same instance.
    if record is None or record.form_id == slot.event_form.form_id:
        definition = slot.event_form.form
    else:
        definition = record.form
    c = compiled(definition)
    missing = list(study.missing_codes)
    missing_set = frozenset(study.missing_code_set())
    masked = {i["name"] for i in c.items if disclosure.hides(c.elements[i["element"]])}
    events = services.other_events(subject, definition, exclude=record, compiled_form=c)
    errors: dict[str, str] = {}
    banner = ""
    conflicts: dict = {}
    version = record.version if record else None
    base = record.data if record else {}
    status = record.status if record else Status.INCOMPLETE
    reason = ""
    values, rows = entry.display_values(c, record.data if record else {})

    if request.method == "POST":
        values, rows = entry.read_post(c, request.POST, request.FILES, store_file=_store_file(study))
        for name in masked:
            # The page never had the identifier, so it cannot send it: keep the stored one.
            values[name] = entry.display((record.data if record else {}).get(name))
        status = _int(request.POST.get("__status"), Status.INCOMPLETE)
        reason = request.POST.get("__reason", "").strip()
        expected = _int(request.POST.get("__version"), None)
        pending = entry.unsign(request.POST.get("__conflicts", "")) or {}
        for key, theirs in pending.get("theirs", {}).items():
            choice = request.POST.get(f"__keep__{key}")
            if choice == "theirs":
                if key in c.repeating:
                    rows[key] = theirs
                else:
                    values[key] = theirs
            elif choice != "mine":
                errors[key] = "Both you and someone else changed this field: choose which value to keep."
                conflicts[key] = (values.get(key, rows.get(key)), theirs)
        if not errors:
            try:
                saved = services.save_record(
                    actor=request.user,
                    subject=subject,
                    event_name=event,
                    form_name=form,
                    values=entry.submitted_record(values, rows),
                    status=status,
                    instance=instance,
                    expected_version=expected,
                    reason=reason,
                    slot=slot,
                )
            except services.RecordValidationError as exc:
                errors = exc.field_errors
                banner = "The form was not saved: correct the fields marked below."
            except services.ReasonRequiredError as exc:
                errors["__reason"] = exc.messages[0]
                banner = "The form was not saved: it is Complete, so a change needs a reason."
            except services.EditConflictError as exc:
                current = exc.current
                base_data = entry.unsign(request.POST.get("__base", "")) or {}
                values, rows, found = entry.merge(c, base_data, (values, rows), current.data, missing_set)
                conflicts = found
                who = current.updated_by.get_username() if current.updated_by else "someone"
                banner = (
                    f"{who} saved this form (version {current.version}) while you were editing. Their changes "
                    "to other fields are in the form now"
                    + ("; choose yours or theirs where you both changed a field" if found else "")
                    + ", then save again."
                )
                version, base, record = current.version, current.data, current
            except services.RecordLockedError as exc:
                banner = f"Not saved: {exc}"
            except ValidationError as exc:
                banner = "Not saved: " + " ".join(exc.messages)
            else:
                messages.success(request, f"Saved {saved.form.title} (version {saved.version}).")
                if request.POST.get("__next") == "subject":
                    return redirect("web:subject", slug=study.slug, subject_id=subject.subject_id)
                return redirect(_entry_url(study, subject, event, form, instance))

    who = (
        (record.updated_by.get_username() if record and record.updated_by else "someone") if conflicts else ""
    )
    theirs_display = {}
    panels = {}
    if conflicts:
        current_values, current_rows = entry.display_values(c, record.data if record else {})
        for key, (mine, _theirs) in conflicts.items():
            theirs_value = current_rows.get(key) if key in c.repeating else current_values.get(key, "")
            theirs_display[key] = theirs_value
            panels[key] = entry.conflict_panel(c, key, mine, theirs_value, who)

    hidden, computed = entry.visible_state(c, values, rows, events=events, missing=missing_set)
    for lg in c.logic if disclosure.identified else ():
        # De-identified, a calculation shows the value the server stored (and the browser does
        # not recompute it): the values it reads may be hidden or shifted on this page.
        if lg.calculation is not None and lg.group is None:
            values[lg.name] = entry.display(computed.get(lg.name))
        elif lg.calculation is not None:
            for index, row in enumerate(rows.get(lg.group, [])):
                computed_rows = computed.get(lg.group) or []
                if index < len(computed_rows):
                    row[lg.name] = entry.display(computed_rows[index].get(lg.name))

    open_queries = {}
    # `_record` says whether there are any; the record of an edit conflict comes from the
    # service, so it is asked.
    if record is not None and getattr(record, "has_open_queries", True):
        for field, n in (
            Query.objects.filter(record=record)
            .exclude(status=Query.CLOSED)
            .values_list("field")
            .annotate(n=Count("pk"))
        ):
            open_queries[field] = n
    can_query = record is not None and can("verify_data")
    links = _links(c, record, open_queries, can_query)
    values, rows = entry.form_values(c, disclosure, subject, values, rows)
    html, sk = entry.render_form(
        c,
        definition.spec,
        missing=missing,
        values=values,
        rows=rows,
        hidden=hidden,
        errors=errors,
        masked=masked,
        links=links,
        conflicts=panels,
    )
    # Locking a subject sets `locked` on each of its records, so an unlocked record needs no
    # look-up of the subject's lock; a new record does.
    subject_lock = None
    if record is None or record.locked:
        subject_lock = SubjectLock.objects.filter(subject=subject).select_related("locked_by").first()
    locked = bool(record and record.locked) or subject_lock is not None
    instances = []
    if slot.event_form.repeating:
        instances = list(
            FormRecord.objects.filter(subject=subject, event=slot.event, form_name=form)
            .order_by("instance")
            .values_list("instance", "status")
        )
    signatures = (
        list(record.signatures.select_related("signer"))
        if record and record.status == Status.COMPLETE
        else []
    )
    for signature in signatures:
        signature.shown_at = disclosure.timestamp(subject, signature.signed_at)
    return render(
        request,
        "records/entry.html",
        {
            "study": study,
            "subject": subject,
            "event": slot.event,
            "definition": definition,
            "record": record,
            "instance": instance,
            "repeating": slot.event_form.repeating,
            "instances": instances,
            "form_html": mark_safe(html),  # noqa: S308 - built by entry.py, which escapes every value
            "logic_json": mark_safe(sk.logic_json),  # noqa: S308 - JSON with <, > and & escaped
            # Other events' values feed the browser's calculations; a de-identified page runs
            # none, and must not carry another form's identifiers or real dates.
            "events_json": mark_safe(  # noqa: S308 - as above
                entry._json_script((events or {}) if disclosure.identified else {})
            ),
            "deidentified": not disclosure.identified,
            "deidentified_entry": deidentified_entry,
            "saved_at": disclosure.timestamp(subject, record.updated_at) if record else None,
            "subject_locked_at": disclosure.timestamp(subject, subject_lock.locked_at)
            if subject_lock
            else None,
            "row_templates": mark_safe("".join(sk.row_templates.values())),  # noqa: S308 - built by entry.py
            "can_edit": can_edit and not locked,
            "may_enter": can_edit,
            "locked": locked,
            "subject_lock": subject_lock,
            "can_lock": record is not None and can("lock_records"),
            # services.may_sign: sign_records at the subject's site, which the user sees.
            "can_sign": record is not None and record.status == Status.COMPLETE and can("sign_records"),
            "signatures": signatures,
            "status": status,
            "statuses": Status.choices,
            "version": version or "",
            # Signed, not encrypted: it would carry the record's raw values to a de-identified
            # page, which never posts anyway.
            "base_token": entry.sign(base) if disclosure.identified else "",
            "conflicts_token": entry.sign({"theirs": theirs_display}) if conflicts else "",
            "reason": reason,
            "reason_needed": bool(record and record.status == Status.COMPLETE),
            "reason_error": errors.get("__reason", ""),
            "banner": banner,
            "error_count": len([k for k in errors if k != "__reason"]),
            "open_query_count": sum(open_queries.values()),
        },
    )


DEIDENTIFIED_READ_ONLY = (
    "Your role sees this study de-identified (dates shifted, identifiers hidden), so it may read "
    "forms but not save them: a save would store the shifted values. Ask a study administrator "
    "for a role that may view identifiers to enter data."
)


def _refuse_deidentified_writes(user, study) -> None:
    """The entry pages are read-only for a user who sees the study de-identified (403)."""
    if not Disclosure.for_user(user, study).identified:
        raise PermissionDenied(DEIDENTIFIED_READ_ONLY)


def _int(text, default):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _store_file(study):
    def store(upload) -> str:
        name = get_valid_filename(upload.name)[-100:] or "upload"
        return default_storage.save(f"records/{study.slug}/{uuid.uuid4().hex}/{name}", upload)

    return store


def _links(c, record, open_queries: dict, can_query: bool) -> dict[str, str]:
    if record is None:
        return {}
    links = {}
    for item in c.items:
        if item["repeating"]:
            continue
        n = escape(item["name"])
        html = (
            f'<a class="hist" href="../history/{n}/" title="History of this field (who, when, old → new, why)">'
            "history</a>"
        )
        count = open_queries.get(item["name"])
        if count:
            html += f'<a class="qbadge" href="../queries/?field={n}" title="Open queries on this field">{count} open</a>'
        if can_query:
            html += f'<a class="qraise" href="../queries/new/?field={n}" title="Raise a query on this field">query</a>'
        links[item["name"]] = html
    return links


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
    record = _record(subject, slot, form, instance)
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
    record = _record(subject, slot, form, instance)
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
    record = _record(subject, slot, form, instance)
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
    record = _record(subject, slot, form, instance)
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
    record = _record(subject, slot, form, instance)
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
        n = _int(index, 0)
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
            if action == "answer":
                services.answer_query(actor=request.user, query=query, text=text)
            elif action in ("close", "reopen"):
                services.close_query(actor=request.user, query=query, text=text, reopen=action == "reopen")
            else:
                raise ValidationError("Choose answer, close or reopen.")
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
            "can_answer": access.may_act_at_site(request.user, "enter_data", study, subject.site),
            "can_close": access.may_act_at_site(request.user, "verify_data", study, subject.site),
            "error": error,
            "entry_url": _entry_url(study, subject, record.event.name, record.form_name, record.instance),
        },
    )


def _dated(user, study, queries) -> list[tuple[Query, object]]:
    """Each query with its last change as this user may see it (shifted with its subject's dates)."""
    disclosure = Disclosure.for_user(user, study)
    dated = [(q, disclosure.timestamp(q.record.subject, q.updated_at)) for q in queries]
    if not disclosure.identified:
        # In the order of the times shown: the real order would tell how subjects' shifts differ.
        dated.sort(key=lambda pair: (pair[1] is not None, pair[1]), reverse=True)
    return dated


@login_required
def query_list(request, slug):
    """Open (or answered, or all) queries of the study, filterable by site; a record's queries too."""
    study = access.get_study(request.user, slug)
    queries = _visible_queries(request.user, study).select_related(
        "record__subject__site", "record__event", "record__form", "opened_by"
    )
    site_code = request.GET.get("site", "")
    if site_code:
        queries = queries.filter(record__subject__site__code=site_code)
    state = request.GET.get("status", "open")
    if state == "open":
        queries = queries.filter(Q(status=Query.OPEN) | Q(status=Query.ANSWERED))
    elif state in (Query.ANSWERED, Query.CLOSED):
        queries = queries.filter(status=state)
    return render(
        request,
        "records/queries.html",
        {
            "study": study,
            "queries": _dated(request.user, study, queries.order_by("-updated_at")[:500]),
            "sites": access.sites_visible_to(request.user, study),
            "site_code": site_code,
            "state": state,
        },
    )


@login_required
def record_queries(request, slug, subject_id, event, form, instance):
    """The queries of one record (the badge next to a field links here)."""
    study, subject, slot = _slot(request, slug, subject_id, event, form)
    record = _record(subject, slot, form, instance)
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
