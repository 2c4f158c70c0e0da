from django.contrib import admin

from . import models as m


class ReadOnlyAdmin(admin.ModelAdmin):
    """Definitions change only through `load_definitions`, which validates and audits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PermissibleValueInline(admin.TabularInline):
    model = m.PermissibleValue
    fields = ("order", "code", "meaning", "concept_code")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(m.DataElement)
class DataElementAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "version", "name", "long_name", "datatype", "identifier")
    list_filter = ("datatype", "identifier")
    search_fields = ("public_id", "name", "long_name", "question")
    inlines = [PermissibleValueInline]


@admin.register(m.FormDefinition)
class FormDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "title", "loaded_at")
    search_fields = ("name", "title")


@admin.register(m.Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "title", "loaded_at")
