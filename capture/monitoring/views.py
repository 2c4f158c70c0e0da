"""Monitoring pages: verifying a form, queries from the entry page, the study's query list,
and the data quality page (findings, runs, rules).

Each view asks capture.studies.access first (404 without access, 403 for a role that may not
act), then calls one service; the panel's forms come back to the entry page (#monitoring).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from capture.definitions.models import FormDefinition
from capture.records import services as records
from capture.records import verification
from capture.records.entry_page import find_record
from capture.records.models import Query
from capture.studies import access

from . import checks, jobs, querylist
from .models import Discrepancy, QualityRule, QualityRun
from .rules import KINDS


def _record(request, slug, subject_id, event, form, instance):
    study_access = access.study_access(request.user, slug)
    subject = study_access.get_subject(subject_id)
    try:
        slot = records.resolve_slot(subject, event, form)
    except ValidationError:
        raise Http404("This form is not collected at this event for this subject.") from None
    record = find_record(subject, slot, form, instance)
    if record is None:
        raise Http404("No such record.")
    return study_access.study, subject, record


def _entry(record, anchor: str = "monitoring") -> str:
    url = reverse(
        "records:entry",
        args=[
            record.subject.study.slug,
            record.subject.subject_id,
            record.event.name,
            record.form_name,
            record.instance,
        ],
    )
    return f"{url}#{anchor}"


def _say(request, exc: Exception) -> None:
    messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))


@login_required
@require_POST
def verify(request, slug, subject_id, event, form, instance):
    """Mark the form verified (or, with `one`, the field chosen)."""
    study, subject, record = _record(request, slug, subject_id, event, form, instance)
    if not verification.may_verify(request.user, record):
        raise PermissionDenied("Your role may not verify data.")
    field = request.POST.get("field", "") if request.POST.get("one") else ""
    if request.POST.get("one") and not field:
        messages.error(request, "Choose the field to verify.")
        return redirect(_entry(record))
    try:
        verification.verify(actor=request.user, record=record, field=field)
    except ValidationError as exc:
        _say(request, exc)
    else:
        messages.success(request, "Field verified." if field else "Form verified.")
    return redirect(_entry(record))


@login_required
@require_POST
def query_open(request, slug, subject_id, event, form, instance):
    study, subject, record = _record(request, slug, subject_id, event, form, instance)
    if not access.may_act_at_site(request.user, "verify_data", study, subject.site):
        raise PermissionDenied("Your role may not raise queries.")
    try:
        query = records.open_query(
            actor=request.user,
            record=record,
            field=request.POST.get("field", ""),
            text=request.POST.get("text", ""),
        )
    except ValidationError as exc:
        _say(request, exc)
        return redirect(_entry(record))
    messages.success(request, "Query opened; the site sees it on the form and in the query list.")
    return redirect(_entry(record, f"query-{query.pk}"))


@login_required
@require_POST
def query_act(request, slug, pk):
    """Answer, close or reopen a query from the entry page's panel (Query.TRANSITIONS decides)."""
    study = access.get_study(request.user, slug)
    visible = Query.objects.filter(record__subject__in=access.subjects_visible_to(request.user, study))
    query = get_object_or_404(visible.select_related("record__subject__study", "record__event"), pk=pk)
    action = request.POST.get("action", "")
    if action not in {a for _, a in Query.TRANSITIONS}:
        raise Http404("No such action.")
    try:
        records.move_query(actor=request.user, query=query, action=action, text=request.POST.get("text", ""))
    except ValidationError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"Query #{query.pk}: {action} done.")
    return redirect(_entry(query.record, f"query-{query.pk}"))


@login_required
def query_list(request, slug):
    """The study's queries: question, field, age and who must act; filters; CSV (?format=csv)."""
    study = access.get_study(request.user, slug)
    filters = querylist.Filters.of(request.GET)
    rows = querylist.rows(request.user, study, querylist.queries(request.user, study, filters))
    if request.GET.get("format") == "csv":
        response = HttpResponse(querylist.as_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-queries.csv"'
        return response
    forms = FormDefinition.objects.filter(event_forms__event__arm__schedule=study.schedule)
    return render(
        request,
        "monitoring/queries.html",
        {
            "study": study,
            "rows": rows,
            "filters": filters,
            "limit": querylist.LIMIT,
            "sites": access.sites_visible_to(request.user, study),
            "forms": sorted({(f.name, f.title) for f in forms}),
            "ages": [a for a in querylist.AGES if a],
            "csv_query": request.GET.urlencode(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def data_quality(request, slug):
    """The findings of the last run (open or excluded), and a button to run the checks now."""
    study = access.get_study(request.user, slug, checks.MANAGE)
    if request.method == "POST":
        job = jobs.start(actor=request.user, study=study)
        return redirect("jobs:detail", job_id=job.pk)
    shown = request.GET.get("show", "open")
    found = checks.visible(request.user, study).filter(excluded=shown == "excluded")
    return render(
        request,
        "monitoring/data_quality.html",
        {
            "study": study,
            "findings": found[:1000],
            "count": found.count(),
            "show": shown,
            "last_run": QualityRun.objects.filter(study=study, finished_at__isnull=False).first(),
            "kinds": KINDS,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def rules(request, slug):
    """The study's custom rules (from the definitions and from the web); a form to add one."""
    study = access.get_study(request.user, slug, checks.MANAGE)
    forms = {
        f.name: f for f in FormDefinition.objects.filter(event_forms__event__arm__schedule=study.schedule)
    }
    error = ""
    if request.method == "POST":
        try:
            checks.save_rule(
                actor=request.user,
                study=study,
                **{
                    k: request.POST.get(k, "").strip()
                    for k in ("name", "title", "form_name", "expression", "field")
                },
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, "Rule saved; it runs with the next checks.")
            return redirect("monitoring:rules", slug=study.slug)
    defined = [(f, r) for f in forms.values() for r in f.spec.get("data_quality", ())]
    return render(
        request,
        "monitoring/rules.html",
        {
            "study": study,
            "web_rules": QualityRule.objects.filter(study=study),
            "defined": defined,
            "forms": sorted((f.name, f.title) for f in forms.values()),
            "error": error,
            "posted": request.POST,
        },
    )


def _discrepancy(request, slug, pk) -> Discrepancy:
    study = access.get_study(request.user, slug, checks.MANAGE)
    return get_object_or_404(checks.visible(request.user, study), pk=pk)


@login_required
@require_POST
def exclude(request, slug, pk):
    discrepancy = _discrepancy(request, slug, pk)
    try:
        checks.exclude(actor=request.user, discrepancy=discrepancy, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        _say(request, exc)
    else:
        messages.success(request, "Finding excluded.")
    return redirect("monitoring:data_quality", slug=slug)


@login_required
@require_POST
def to_query(request, slug, pk):
    discrepancy = _discrepancy(request, slug, pk)
    try:
        query = checks.raise_query(actor=request.user, discrepancy=discrepancy)
    except ValidationError as exc:
        _say(request, exc)
        return redirect("monitoring:data_quality", slug=slug)
    messages.success(request, f"Query #{query.pk} opened on {discrepancy.field}.")
    return redirect("monitoring:data_quality", slug=slug)
