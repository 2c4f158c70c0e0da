"""Report pages: the list, the form (data managers), the table with paging, and the CSV.
Access first (capture/studies/access.py): no study or report for the user is a 404, a role that
may not define reports gets 403; the rows follow the user's sites and disclosure policy."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from capture.api.redcap import render as redcap_render
from capture.api.redcap.project import Project
from capture.studies import access

from . import services
from .forms import ReportForm
from .models import Report
from .rows import ReportError, report_table

# Rows per page of the table: a page of the widest report of the demo study stays well under 300 KB.
PAGE_ROWS = 50


@login_required
@require_GET
def report_list(request, slug):
    found = access.study_access(request.user, slug)
    reports = Report.objects.filter(study=found.study)
    return render(
        request,
        "reports/list.html",
        {"study": found.study, "reports": reports, "may_define": found.can(services.DEFINE_PERMISSION)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def report_new(request, slug):
    study = access.study_access(request.user, slug, services.DEFINE_PERMISSION).study
    return _edit(request, study, Report(study=study))


@login_required
@require_http_methods(["GET", "POST"])
def report_edit(request, slug, pk):
    study = access.study_access(request.user, slug, services.DEFINE_PERMISSION).study
    return _edit(request, study, get_object_or_404(Report, study=study, pk=pk))


def _edit(request, study, report: Report):
    project = Project(study)
    initial = ReportForm.initial_for(report) if report.pk else None
    form = ReportForm(request.POST or None, initial=initial, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            services.save_report(actor=request.user, report=form.apply(report))
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            messages.success(request, f"Report {report.name!r} saved.")
            return redirect("reports:view", slug=study.slug, pk=report.pk)
    return render(request, "reports/form.html", {"study": study, "report": report, "form": form})


@login_required
@require_POST
def report_delete(request, slug, pk):
    study = access.study_access(request.user, slug, services.DEFINE_PERMISSION).study
    report = get_object_or_404(Report, study=study, pk=pk)
    services.delete_report(actor=request.user, report=report)
    messages.success(request, f"Report {report.name!r} deleted.")
    return redirect("reports:list", slug=study.slug)


@login_required
@require_GET
def report_view(request, slug, pk):
    found = access.study_access(request.user, slug)
    report = get_object_or_404(Report, study=found.study, pk=pk)
    labels = request.GET.get("labels") == "1"
    context = {"study": found.study, "report": report, "labels": labels, "error": ""}
    context["may_define"] = found.can(services.DEFINE_PERMISSION)
    try:
        table = report_table(request.user, report, labels=labels, label_headers=labels)
    except ReportError as exc:
        context["error"] = str(exc)
        return render(request, "reports/view.html", context)
    page = Paginator(table.rows, PAGE_ROWS).get_page(request.GET.get("page"))
    context.update(
        page=page,
        headers=table.headers,
        cells=[[row.get(n, "") for n in table.names] for row in page.object_list],
        count=len(table.rows),
    )
    return render(request, "reports/view.html", context)


@login_required
@require_GET
def report_csv(request, slug, pk):
    found = access.study_access(request.user, slug)
    report = get_object_or_404(Report, study=found.study, pk=pk)
    labels = request.GET.get("labels") == "1"
    try:
        table = report_table(request.user, report, labels=labels, label_headers=labels)
    except ReportError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    response = HttpResponse(
        redcap_render.rows_csv(table.rows, table.names, table.headers), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{found.study.slug}-report-{report.pk}.csv"'
    return response
