"""Study administration pages. Each view asks access.py first (404 for a study or subject the
user does not see, 403 for a role that may not), then calls one service."""

from __future__ import annotations

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from capture.audit.shown import shown_events
from capture.measurements import response_rule
from capture.studies import access, services
from capture.studies.disclosure import Disclosure
from capture.studies.models import STUDY_PERMISSIONS, Membership, Site
from capture.studies.roles import ROLES

from . import auditlog, forms, invitations, jobs

READ = "view_audit"  # the read-only pages: administrator, PI, data manager, monitor
MANAGE = "manage_study"


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _role_table():
    """The code's role templates (roles.py) as rows of ticks, for a read-only table."""
    return {
        "roles": list(ROLES.values()),
        "rows": [
            (label, [code in r.permissions for r in ROLES.values()]) for code, label in STUDY_PERMISSIONS
        ],
    }


# ---------------------------------------------------------------------------- members


@login_required
@require_GET
def members(request, slug):
    found = access.study_access(request.user, slug, READ)
    return _members_page(request, found)


def _members_page(request, found, add_form=None, status=200):
    study = found.study
    rows = (
        Membership.objects.filter(study=study)
        .select_related("user")
        .prefetch_related("sites")
        .order_by("user__username")
    )
    for m in rows:
        m.role_title = ROLES[m.role].title if m.role in ROLES else m.role
    context = {
        "study": study,
        "memberships": rows,
        "may_manage": found.can(MANAGE),
        # A system timestamp: withheld from a de-identified reader, as the audit trail's are.
        "identified": Disclosure.for_user(request.user, study).identified,
        "add_form": add_form or forms.AddMemberForm(study=study),
        "today": timezone.localdate(),
        **_role_table(),
    }
    return render(request, "administration/members.html", context, status=status)


@login_required
@require_POST
def member_add(request, slug):
    found = access.study_access(request.user, slug, MANAGE)
    study = found.study
    form = forms.AddMemberForm(request.POST, study=study)
    if form.is_valid():
        data = form.cleaned_data
        api = {k: data[k] for k in ("api_export", "api_import", "api_expires")}
        try:
            if data.get("user"):
                services.add_member(
                    actor=request.user,
                    study=study,
                    user=data["user"],
                    role=data["role"],
                    sites=data["sites"],
                    **api,
                )
                messages.success(request, f"Added {data['user'].get_username()}.")
            else:
                _, invited = invitations.invite_member(
                    actor=request.user,
                    study=study,
                    email=data["email"],
                    role=data["role"],
                    sites=data["sites"],
                    absolute=request.build_absolute_uri,
                    **api,
                )
                messages.success(
                    request, f"Invited {data['email']}." if invited else f"Added the user of {data['email']}."
                )
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            return redirect("administration:members", slug=study.slug)
    return _members_page(request, found, add_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def member(request, slug, pk):
    found = access.study_access(request.user, slug, MANAGE)
    study = found.study
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=pk, study=study)
    role_form = forms.MemberForm(
        initial={"role": membership.role, "sites": list(membership.sites.all())}, study=study
    )
    api_form = forms.ApiRightsForm(
        initial={
            "api_export": membership.api_export,
            "api_import": membership.api_import,
            "api_expires": membership.api_expires,
        }
    )
    if request.method == "POST":
        do = request.POST.get("do", "")
        try:
            if do == "role":
                role_form = forms.MemberForm(request.POST, study=study)
                if role_form.is_valid():
                    services.change_member(
                        actor=request.user,
                        study=study,
                        membership=membership,
                        role=role_form.cleaned_data["role"],
                        sites=role_form.cleaned_data["sites"],
                    )
                    messages.success(request, "Role and sites saved.")
                    return redirect("administration:member", slug=slug, pk=pk)
            elif do == "api":
                api_form = forms.ApiRightsForm(request.POST)
                if api_form.is_valid():
                    d = api_form.cleaned_data
                    services.set_api_rights(
                        actor=request.user,
                        study=study,
                        membership=membership,
                        export=d["api_export"],
                        import_=d["api_import"],
                        expires=d["api_expires"],
                    )
                    messages.success(request, "API rights saved.")
                    return redirect("administration:member", slug=slug, pk=pk)
            elif do == "suspend":
                services.suspend_member(
                    actor=request.user,
                    study=study,
                    membership=membership,
                    reason=request.POST.get("reason", ""),
                )
                messages.success(request, f"Suspended {membership.user.get_username()}.")
                return redirect("administration:member", slug=slug, pk=pk)
            elif do == "reinstate":
                services.reinstate_member(actor=request.user, study=study, membership=membership)
                messages.success(request, f"Reinstated {membership.user.get_username()}.")
                return redirect("administration:member", slug=slug, pk=pk)
            elif do == "remove":
                services.remove_member(actor=request.user, study=study, membership=membership)
                messages.success(request, f"Removed {membership.user.get_username()}; their history stays.")
                return redirect("administration:members", slug=slug)
            else:
                messages.error(
                    request, "Choose what to do: save the role, the API rights, suspend or remove."
                )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
    return render(
        request,
        "administration/member.html",
        {"study": study, "membership": membership, "role_form": role_form, "api_form": api_form},
    )


# ---------------------------------------------------------------------------- sites


@login_required
@require_GET
def sites(request, slug):
    return _sites_page(request, access.study_access(request.user, slug, READ))


def _sites_page(request, found, add_form=None):
    from django.db.models import Count

    study = found.study
    rows = Site.objects.filter(study=study).annotate(n_subjects=Count("subjects")).order_by("code")
    return render(
        request,
        "administration/sites.html",
        {
            "study": study,
            "sites": rows,
            "may_manage": found.can(MANAGE),
            "identified": Disclosure.for_user(request.user, study).identified,  # retirement dates
            "add_form": add_form or forms.SiteForm(),
        },
    )


@login_required
@require_POST
def site_add(request, slug):
    found = access.study_access(request.user, slug, MANAGE)
    form = forms.SiteForm(request.POST)
    if form.is_valid():
        try:
            site = services.open_site(actor=request.user, study=found.study, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, f"Opened site {site.code}.")
            return redirect("administration:sites", slug=slug)
    return _sites_page(request, found, add_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def site(request, slug, pk):
    found = access.study_access(request.user, slug, MANAGE)
    study = found.study
    the_site = get_object_or_404(Site, pk=pk, study=study)
    form = forms.RenameSiteForm(initial={"name": the_site.name})
    if request.method == "POST":
        try:
            if request.POST.get("do") == "retire":
                services.retire_site(
                    actor=request.user, study=study, site=the_site, reason=request.POST.get("reason", "")
                )
                messages.success(request, f"Retired site {the_site.code}.")
                return redirect("administration:sites", slug=slug)
            form = forms.RenameSiteForm(request.POST)
            if form.is_valid():
                services.rename_site(
                    actor=request.user, study=study, site=the_site, name=form.cleaned_data["name"]
                )
                messages.success(request, "Site renamed.")
                return redirect("administration:sites", slug=slug)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
    return render(request, "administration/site.html", {"study": study, "site": the_site, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def move_subject(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id, MANAGE)
    form = forms.MoveSubjectForm(request.POST or None, study=study, subject=subject)
    if request.method == "POST" and form.is_valid():
        try:
            services.move_subject(actor=request.user, study=study, subject=subject, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, f"Moved {subject.subject_id} to site {form.cleaned_data['site'].code}.")
            return redirect("web:subject", slug=slug, subject_id=subject.subject_id)
    return render(
        request, "administration/move_subject.html", {"study": study, "subject": subject, "form": form}
    )


# ---------------------------------------------------------------------------- settings


def _settings_forms(study, data=None, do=""):
    """The settings page's three forms; the one named by `do` bound to the POST."""
    return {
        "status": forms.StudyStatusForm(data if do == "status" else None, initial={"status": study.status}),
        "ids": forms.SubjectIdPolicyForm(
            data if do == "ids" else None,
            initial={"subject_ids": study.subject_ids, "subject_id_pattern": study.subject_id_pattern},
        ),
        "codes": forms.MissingCodesForm(
            data if do == "codes" else None,
            initial={"codes": forms.MissingCodesForm.text_of(study.missing_codes)},
        ),
        "response": forms.ResponseRuleForm(
            data if do == "response" else None,
            initial=forms.ResponseRuleForm.initial_of(response_rule.rule_of(study)),
        ),
    }


def _save_setting(actor, study, do: str, data: dict) -> str:
    """Call the service of the submitted form; returns the message for the page."""
    if do == "status":
        services.set_study_status(actor=actor, study=study, status=data["status"], reason=data["reason"])
        return f"The study is now in {data['status']} status."
    if do == "ids":
        services.set_subject_id_policy(
            actor=actor, study=study, subject_ids=data["subject_ids"], pattern=data["subject_id_pattern"]
        )
        return "Subject id policy saved."
    if do == "response":
        response_rule.set_response_rule(actor=actor, study=study, **data)
        return "Response rule saved; the study's responses are recomputed."
    services.set_missing_codes(actor=actor, study=study, codes=data["codes"])
    return "Missing-data codes saved."


@login_required
@require_http_methods(["GET", "POST"])
def study_settings(request, slug):
    found = access.study_access(request.user, slug, MANAGE)
    study = found.study
    do = request.POST.get("do") or ("codes" if "codes" in request.POST else "")
    page_forms = _settings_forms(study, request.POST or None, do)
    form = page_forms.get(do)
    if request.method == "POST" and form is not None and form.is_valid():
        try:
            message = _save_setting(request.user, study, do, form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, message)
            return redirect("administration:settings", slug=slug)
    has_subjects = study.subjects.exists()
    return render(
        request,
        "administration/settings.html",
        {
            "study": study,
            "status_form": page_forms["status"],
            "ids_form": page_forms["ids"],
            "form": page_forms["codes"],
            "response_form": page_forms["response"],
            "has_subjects": has_subjects,
            "id_in_words": services.id_pattern_in_words(study.subject_id_pattern),
        },
    )


# ---------------------------------------------------------------------------- audit log


def _link(base: str, shown) -> str | None:
    """The page of the record or subject the event is about (`base` is the study's subjects
    path, reversed once per page: a reverse per row costs more than the query)."""
    e = shown.event
    if e.object_type == "record":
        parts = e.object_label.split(" / ")
        if len(parts) == 3 and " #" in parts[2]:
            form, _, instance = parts[2].rpartition(" #")
            if instance.isdigit():
                return f"{base}{quote(parts[0])}/{quote(parts[1])}/{quote(form)}/{instance}/"
    if e.object_type in ("subject", "query"):
        sid = e.object_label.split(" / ")[0].split(" · ")[0]
        if sid:
            return f"{base}{quote(sid)}/"
    return None


def _row(base: str, shown) -> dict:
    """One table row, its text made here: the template only places it."""
    e = shown.event
    when = timezone.localtime(shown.timestamp).strftime("%Y-%m-%d %H:%M:%S") if shown.timestamp else None
    return {
        "seq": e.seq,
        "when": when,
        "who": e.actor_label,
        "action": e.action,
        "label": shown.object_label,
        "after": shown.after,
        "link": _link(base, shown),
        "changes": auditlog.changes(shown),
        "reason": e.reason,
    }


def _audit_context(request, slug):
    found = access.study_access(request.user, slug, READ)
    policy = Disclosure.for_user(request.user, found.study)
    audit_filter = auditlog.read_filter(request.GET)
    events = auditlog.events_for(request.user, found.study, audit_filter, policy)
    return found, policy, audit_filter, events


@login_required
@require_GET
def audit(request, slug):
    found, policy, audit_filter, events = _audit_context(request, slug)
    return _audit_page(request, found, policy, audit_filter, events)


def _audit_page(request, found, policy, audit_filter, events):
    study = found.study
    try:
        rows, next_before = auditlog.page_of(events, study, request.GET.get("before"))
    except ValidationError as exc:
        raise Http404(_errors(exc)) from None
    base = reverse("web:subject", kwargs={"slug": study.slug, "subject_id": "-"})[:-2]
    shown = [_row(base, s) for s in shown_events(rows, policy, study)]
    return render(
        request,
        "administration/audit.html",
        {
            "study": study,
            "rows": shown,
            "filter": audit_filter,
            "filter_errors": audit_filter.errors,  # `filter.errors` would read the filter named "errors"
            "query": audit_filter.query_string(),
            "next_before": next_before,
            "first_page": not request.GET.get("before"),
            "identified": policy.identified,
            "sites": access.sites_visible_to(request.user, study),
            "verification": jobs.latest_verification(request.user, study),
        },
    )


@login_required
@require_GET
def audit_csv(request, slug):
    found, policy, audit_filter, events = _audit_context(request, slug)
    response = StreamingHttpResponse(auditlog.csv_rows(events, policy, found.study), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{found.study.slug}-audit-{stamp}.csv"'
    return response


@login_required
@require_POST
def audit_verify(request, slug):
    """Start verifying the chain in the background (a million events take minutes); the audit page
    shows the job's progress and then its result."""
    found = access.study_access(request.user, slug, READ)
    jobs.start_verification(actor=request.user, study=found.study)
    messages.info(request, "Verifying the audit chain in the background; the result shows here.")
    query = auditlog.read_filter(request.GET).query_string()
    url = reverse("administration:audit", kwargs={"slug": slug})
    return redirect(f"{url}?{query}" if query else url)


# ---------------------------------------------------------------------------- invitations


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The invitation link: Django's password-reset check of the token, then a new password."""

    template_name = "administration/set_password.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        messages.success(self.request, "Your password is set: log in with your user name and it.")
        return super().form_valid(form)
