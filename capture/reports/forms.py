"""The report form: it offers the study's REDCap field and event names; services.save_report decides."""

from __future__ import annotations

from typing import cast

from django import forms

from capture.api.redcap.project import Project

from .models import Report


def field_choices(project: Project) -> list[tuple[str, str]]:
    """Every field of the dictionary (a checkbox as one field) and each form's status, in form order."""
    choices = [(project.record_id, f"{project.record_id} — Record ID")]
    for inst in project.instruments.values():
        for name, (instrument, f) in project.fields_by_name.items():
            if instrument == inst.name:
                choices.append((name, f"{name} — {f.label}"))
        choices.append((f"{inst.name}_complete", f"{inst.name}_complete — {inst.label} complete?"))
    return choices


class ReportForm(forms.Form):
    name = forms.CharField(max_length=200)
    # Not `fields`: that name is the form's own dictionary of fields.
    columns = forms.MultipleChoiceField(
        choices=(),
        label="Fields",
        widget=forms.SelectMultiple(attrs={"size": 12}),
        help_text="Columns, in dictionary order.",
    )
    events = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple, help_text="None chosen: every event."
    )
    filter_logic = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="REDCap filter logic, e.g. [sex] = '2' and [age] >= 18. Blank: every row.",
    )
    sort_field = forms.ChoiceField(choices=(), required=False, help_text="Blank: by record and event.")
    sort_descending = forms.BooleanField(required=False, label="Sort descending")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        choices = field_choices(project)
        self._choice("columns").choices = choices
        self._choice("sort_field").choices = [("", "—"), *choices]
        self._choice("events").choices = [
            (e.unique_name, f"{e.label} ({e.unique_name})") for e in project.events
        ]
        if not project.longitudinal:
            del self.fields["events"]

    def _choice(self, name: str) -> forms.ChoiceField:
        return cast(forms.ChoiceField, self.fields[name])

    @staticmethod
    def initial_for(report: Report) -> dict:
        definition = report.definition()
        definition["columns"] = definition.pop("fields")
        return definition

    def apply(self, report: Report) -> Report:
        data = self.cleaned_data
        report.name = data["name"]
        report.fields = list(data["columns"])
        report.events = list(data.get("events") or [])
        report.filter_logic = data["filter_logic"]
        report.sort_field = data["sort_field"]
        report.sort_descending = data["sort_descending"]
        return report
