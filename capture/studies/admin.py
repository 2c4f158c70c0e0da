"""Set-up screens for administrators. Every save goes through the study services,
so the admin writes the same audit rows as the rest of Capture."""

from django import forms
from django.contrib import admin
from django.db import transaction

from capture.audit.services import record_event

from . import services
from .models import Membership, Site, Study, Subject
from .roles import ROLE_CHOICES


class SiteInline(admin.TabularInline):
    model = Site
    extra = 1
    fields = ("code", "name")

    def has_delete_permission(self, request, obj=None):
        return False  # a site with subjects must stay; one without may be renamed


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "schedule", "created_at")
    fields = ("slug", "name", "description", "schedule", "subject_id_pattern", "missing_codes")
    inlines = [SiteInline]

    def get_readonly_fields(self, request, obj=None):
        # Changing the schedule or the id pattern of a running study would orphan records and ids.
        return ("slug", "schedule", "subject_id_pattern") if obj else ()

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.create_study(
                actor=request.user,
                slug=obj.slug,
                name=obj.name,
                schedule=obj.schedule,
                subject_id_pattern=obj.subject_id_pattern,
                description=obj.description,
            )
            obj.pk = created.pk
            obj.created_at = created.created_at
            obj._state.adding = False
            return
        with transaction.atomic():
            before = {k: form.initial.get(k) for k in form.changed_data}
            obj.save()
            record_event(
                actor=request.user,
                study=obj,
                action="study.update",
                object_type="study",
                object_id=obj.pk,
                object_label=obj.name,
                before=before,
                after={k: form.cleaned_data[k] for k in form.changed_data},
            )

    def save_formset(self, request, form, formset, change):
        with transaction.atomic():
            for site in formset.save(commit=False):
                if site.pk is None:
                    services.add_site(actor=request.user, study=form.instance, code=site.code, name=site.name)
                else:
                    site.save()
                    record_event(
                        actor=request.user,
                        study=form.instance,
                        action="site.update",
                        object_type="site",
                        object_id=site.pk,
                        object_label=str(site),
                        after={"code": site.code, "name": site.name},
                    )


class MembershipForm(forms.ModelForm):
    role = forms.ChoiceField(choices=ROLE_CHOICES)

    class Meta:
        model = Membership
        fields = ("user", "study", "role", "sites")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ("user", "study", "role", "all_sites")
    list_filter = ("study", "role")
    filter_horizontal = ("sites",)

    def save_model(self, request, obj, form, change):
        membership = services.grant_role(
            actor=request.user,
            study=form.cleaned_data["study"],
            user=form.cleaned_data["user"],
            role=form.cleaned_data["role"],
            sites=list(form.cleaned_data["sites"]),
        )
        obj.pk = membership.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # grant_role set the sites and permissions

    def delete_model(self, request, obj):
        services.revoke_role(actor=request.user, study=obj.study, user=obj.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would skip revoke_role's audit
        return actions


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    """Read-only: subjects are enrolled through the study pages, which audit."""

    list_display = ("subject_id", "study", "site", "kind", "model_type", "derived_from", "enrollment_date")
    list_filter = ("study", "kind", "site")
    search_fields = ("subject_id",)
    exclude = ("date_shift_days",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
