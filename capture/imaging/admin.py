from django.contrib import admin

from .models import ImagingSeries, ImagingStudy


class SeriesInline(admin.TabularInline):
    model = ImagingSeries
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in ImagingSeries._meta.fields]


@admin.register(ImagingStudy)
class ImagingStudyAdmin(admin.ModelAdmin):
    # Read-only: links are changed through the queue, which audits them.
    list_display = (
        "study_uid",
        "study",
        "subject",
        "modalities",
        "study_date",
        "series_count",
        "instance_count",
    )
    list_filter = ("study", "source_kind")
    readonly_fields = [f.name for f in ImagingStudy._meta.fields]
    inlines = [SeriesInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
