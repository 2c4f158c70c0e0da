"""Page views. Each first asks capture.studies.access for the object, then renders."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from capture.definitions.models import Arm, DataElement
from capture.records.models import FormRecord, Query, SubjectLock
from capture.studies import access, services
from capture.studies.disclosure import Disclosure
from capture.studies.models import Subject
from capture.studies.roles import ROLES

from .dashboard import build_grid


def home(request):
    return redirect("web:study_list")


@login_required
def study_list(request):
    studies = access.studies_visible_to(request.user).select_related("schedule")
    rows = [
        {
            "study": study,
            "role": ROLES[role].title if (role := access.role_of(request.user, study)) else "Superuser",
            "subjects": access.subjects_visible_to(request.user, study).count(),
        }
        for study in studies
    ]
    return render(request, "web/study_list.html", {"rows": rows})


@login_required
@access.request_cache  # the page and its disclosure policy read the permissions once
def dashboard(request, slug):
    study = access.get_study(request.user, slug)
    arms = list(study.schedule.arms.all())
    arm = next((a for a in arms if a.name == request.GET.get("arm")), arms[0] if arms else None)
    subjects = access.subjects_visible_to(request.user, study).filter(arm=arm).select_related("site")
    site_code = request.GET.get("site", "")
    if site_code:
        subjects = subjects.filter(site__code=site_code)
    query = request.GET.get("q", "").strip()
    if query:
        subjects = subjects.filter(subject_id__icontains=query)
    page = Paginator(subjects.order_by("subject_id"), study_page_size()).get_page(request.GET.get("page"))
    perms = access.permissions(request.user, study)
    grid = build_grid(arm, list(page.object_list)) if arm else None
    return render(
        request,
        "web/dashboard.html",
        {
            "study": study,
            "arms": arms,
            "arm": arm,
            "grid": grid,
            "grid_rows": grid.rows_html(study.slug, show_site=True) if grid else "",
            "page": page,
            "sites": access.sites_visible_to(request.user, study),
            "site_code": site_code,
            "query": query,
            "perms": perms,
            "may_enrol": "enroll_subject" in perms and Disclosure.for_user(request.user, study).identified,
            "open_queries": Query.objects.filter(
                record__subject__in=access.subjects_visible_to(request.user, study), status=Query.OPEN
            ).count(),
        },
    )


def study_page_size() -> int:
    from django.conf import settings

    return settings.CAPTURE["DASHBOARD_PAGE_SIZE"]


@login_required
@access.request_cache  # the page and its disclosure policy read the permissions once
def subject_detail(request, slug, subject_id):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    perms = access.permissions(request.user, study)
    grid = build_grid(subject.arm, [subject])
    cells = iter(grid.rows[0].cells)
    events = [(event, [next(cells) for _ in forms]) for event, forms in grid.events]
    visible = access.subjects_visible_to(request.user, study)
    disclosure = Disclosure.for_user(request.user, study)
    subject_lock = SubjectLock.objects.filter(subject=subject).select_related("locked_by").first()
    return render(
        request,
        "web/subject.html",
        {
            "study": study,
            "subject": subject,
            "enrolled": disclosure.enrollment_date(subject),
            "events": events,
            # Only what the user may see: a coordinator does not learn of another site's models.
            "derived_models": visible.filter(derived_from=subject),
            "derived_from": visible.filter(pk=subject.derived_from_id).first(),
            # get_subject has settled that the user sees the subject's site; the role decides the rest.
            # A de-identified user reads forms but never saves them (records.views.entry_page).
            "can_enter": "enter_data" in perms and disclosure.identified,
            "can_lock": "lock_records" in perms,
            "can_link_imaging": "import_data" in perms,
            "can_move": "manage_study" in perms,
            "subject_lock": subject_lock,
            "locked_at": disclosure.timestamp(subject, subject_lock.locked_at) if subject_lock else None,
        },
    )


@login_required
@access.request_cache  # the page and its disclosure policy read the permissions once
def record_detail(request, slug, subject_id, event, form, instance):
    study = access.get_study(request.user, slug)
    subject = access.get_subject(request.user, study, subject_id)
    record = (
        FormRecord.objects.select_related("form", "event", "updated_by")
        .filter(subject=subject, event__name=event, form_name=form, instance=instance)
        .first()
    )
    if record is None:
        raise Http404("No such record.")
    disclosure = Disclosure.for_user(request.user, study)
    elements = {
        e.ref: e for e in DataElement.objects.filter(forms=record.form).prefetch_related("permissible_values")
    }
    sections = []
    for section in record.form.spec["sections"]:
        entries = []
        for entry in section["items"]:
            if "group" in entry:
                rows = record.data.get(entry["group"], []) if entry["repeating"] else [record.data]
                entries.append(
                    {
                        "group": entry.get("label") or entry["group"],
                        "columns": [_label(i, elements) for i in entry["items"]],
                        "rows": [
                            [
                                _shown(i, row.get(i["name"]), elements, disclosure, subject)
                                for i in entry["items"]
                            ]
                            for row in rows
                        ],
                    }
                )
            else:
                entries.append(
                    {
                        "label": _label(entry, elements),
                        "value": _shown(entry, record.data.get(entry["name"]), elements, disclosure, subject),
                        "element": elements[entry["element"]],
                    }
                )
        sections.append({"title": section["title"], "entries": entries})
    return render(
        request,
        "web/record.html",
        {
            "study": study,
            "subject": subject,
            "record": record,
            "sections": sections,
            "saved_at": disclosure.timestamp(subject, record.updated_at),
            "can_enter": disclosure.identified
            and access.may_act_at_site(request.user, "enter_data", study, subject.site),
        },
    )


def _label(item: dict, elements: dict) -> str:
    return item.get("label") or elements[item["element"]].question


def _shown(item: dict, value, elements: dict, disclosure: Disclosure, subject) -> str:
    """A stored value in words, as this user may see it: a hidden identifier masked, a date
    shifted with the subject's dates, a code as its meaning."""
    element = elements[item["element"]]
    if value in (None, "", []):
        return ""
    value = disclosure.value(subject, datatype=element.datatype, identifier=element.identifier, value=value)
    if disclosure.hides(element):
        return value
    meanings = {pv.code: pv.meaning for pv in element.permissible_values.all()}
    if isinstance(value, list):
        return ", ".join(meanings.get(v, v) for v in value)  # type: ignore[misc]  # codes and meanings are text
    if element.datatype == "boolean" and not meanings:
        return {"1": "Yes", "0": "No"}.get(value, value)
    text = meanings.get(str(value), str(value))
    return f"{text} {element.unit}".strip() if element.unit and not meanings else text


class EnrollForm(forms.Form):
    """The enrolment of one kind of subject: a patient is asked no animal-model fields."""

    site = forms.ModelChoiceField(queryset=None, empty_label=None)  # type: ignore[var-annotated]  # the queryset is set per study in __init__
    kind = forms.ChoiceField(choices=Subject.KINDS, initial=Subject.PATIENT, widget=forms.HiddenInput)
    enrollment_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    derived_from = forms.ModelChoiceField(  # type: ignore[var-annotated]  # the queryset is set per study in __init__
        queryset=None, required=False, help_text="For an animal model: the patient it derives from."
    )
    model_type = forms.ChoiceField(
        required=False,
        choices=[
            ("", "—"),
            ("PDX", "PDX"),
            ("GEMM", "GEMM"),
            ("syngeneic", "Syngeneic"),
            ("CDX", "Cell-line xenograft"),
        ],
    )
    arm = forms.ModelChoiceField(queryset=None, required=False, empty_label="(first arm for the kind)")  # type: ignore[var-annotated]  # the queryset is set per study in __init__

    def __init__(self, *args, user, study, kind=Subject.PATIENT, date_asked=False, **kwargs):
        super().__init__(*args, **kwargs)
        if date_asked:  # a form asks it: that form is its one source (studies.services)
            del self.fields["enrollment_date"]
        self.fields["kind"].initial = kind
        self.fields["site"].queryset = access.sites_visible_to(user, study).filter(retired_at__isnull=True)
        self.fields["arm"].queryset = Arm.objects.filter(schedule=study.schedule, subject_kind=kind)
        if "enrollment_date" in self.fields:
            self.fields["enrollment_date"].initial = timezone.localdate()
        if kind == Subject.PATIENT:
            del self.fields["derived_from"], self.fields["model_type"]
        else:
            self.fields["derived_from"].queryset = access.subjects_visible_to(user, study).patients()

    def clean_kind(self):
        if self.cleaned_data["kind"] != self.fields["kind"].initial:
            raise forms.ValidationError("The page was for another kind of subject; open it again.")
        return self.cleaned_data["kind"]


@login_required
@require_http_methods(["GET", "POST"])
def enroll(request, slug):
    study = access.get_study(request.user, slug, "enroll_subject")
    if not Disclosure.for_user(request.user, study).identified:
        # The enrolment date typed here would show shifted on the subject page: the shift.
        raise PermissionDenied(
            "Your role sees this study de-identified (dates shifted), so it may not enrol subjects: "
            "ask a study administrator for a role that may view identifiers."
        )
    kind = request.POST.get("kind") or request.GET.get("kind") or Subject.PATIENT
    kinds = dict(Subject.KINDS)
    offered = [k for k in kinds if study.schedule.arms.filter(subject_kind=k).exists()]
    if kind not in offered:
        kind = offered[0] if offered else Subject.PATIENT
    asked = services.enrolment_date_question(study.schedule.arms.filter(subject_kind=kind).first())
    form = EnrollForm(request.POST or None, user=request.user, study=study, kind=kind, date_asked=bool(asked))
    if request.method == "POST" and form.is_valid():
        # Until the form gives it, a subject's enrolment date is the day it is enrolled here.
        data = {
            "derived_from": None,
            "model_type": "",
            "enrollment_date": timezone.localdate(),
            **form.cleaned_data,
        }
        try:
            subject = services.enroll_subject(
                actor=request.user,
                study=study,
                site=data["site"],
                kind=data["kind"],
                enrollment_date=data["enrollment_date"],
                arm=data["arm"],
                derived_from=data["derived_from"],
                model_type=data["model_type"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except PermissionDenied as exc:
            form.add_error("site", str(exc))
        else:
            messages.success(request, f"Enrolled {subject.subject_id}.")
            asked = services.enrolment_date_question(subject.arm)
            if asked:  # on to the form that asks the enrolment date
                return redirect("records:entry", study.slug, subject.subject_id, asked.event, asked.form, 1)
            return redirect("web:subject", slug=study.slug, subject_id=subject.subject_id)
    next_ids = [(site, services.next_subject_id(study, site)[1]) for site in form.fields["site"].queryset]
    return render(
        request,
        "web/enroll.html",
        {
            "study": study,
            "form": form,
            "kind": kind,
            "kinds": [(k, kinds[k]) for k in offered],
            "id_in_words": services.id_pattern_in_words(study.subject_id_pattern),
            "next_ids": next_ids,
            "date_asked": asked,
        },
    )
