from django.contrib import admin

from .models import FormRecord


@admin.register(FormRecord)
class FormRecordAdmin(admin.ModelAdmin):
    """Read-only: form data changes only through the record service, which validates and audits."""

    list_display = ("subject", "event", "form_name", "instance", "status", "version", "locked", "updated_at")
    list_filter = ("form_name", "status", "locked")
    search_fields = ("subject__subject_id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
