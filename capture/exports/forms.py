"""The export builder form: turns the page's choices into an ExportSpec."""

from __future__ import annotations

import re

from django import forms as dj

from capture.definitions.models import DataElement, EventForm
from capture.studies import access

from . import cohort as cohort_filter
from .spec import CHECKBOX_MODES, DATE_MODES, FORMATS, LAYOUTS, ExportSpec


def schedule_choices(study):
    """(forms, items grouped by form, events) of the study's schedule, for the builder's lists."""
    efs = list(
        EventForm.objects.filter(event__arm__schedule=study.schedule)
        .select_related("form", "event", "event__arm")
        .order_by("event__arm__order", "event__order", "order")
    )
    forms_by_name = {}
    for ef in efs:
        forms_by_name.setdefault(ef.form.name, ef.form)
    elements = {
        e.ref: e for e in DataElement.objects.filter(forms__in=list(forms_by_name.values())).distinct()
    }
    item_groups = []
    for name, form in forms_by_name.items():
        options = []
        for item in form.items():
            element = elements.get(item["element"])
            label = item.get("label") or (element.question if element else item["name"])
            if element is not None and element.identifier:
                label += " (identifier)"
            options.append((f"{name}.{item['name']}", f"{item['name']} — {label}"))
        item_groups.append((form.title, options))
    form_choices = [(name, f"{form.title} ({name})") for name, form in forms_by_name.items()]
    events = []
    for ef in efs:
        choice = (ef.event.name, f"{ef.event.title} ({ef.event.arm.title})")
        if choice not in events:
            events.append(choice)
    return form_choices, item_groups, events


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", text or "") if part]


class ExportForm(dj.Form):
    layout = dj.ChoiceField(choices=list(LAYOUTS.items()), initial="wide", widget=dj.RadioSelect)
    formats = dj.MultipleChoiceField(
        choices=list(FORMATS.items()), initial=["csv"], widget=dj.CheckboxSelectMultiple
    )
    forms = dj.MultipleChoiceField(
        required=False, widget=dj.CheckboxSelectMultiple, help_text="None ticked: every form."
    )
    items = dj.MultipleChoiceField(
        required=False,
        widget=dj.SelectMultiple(attrs={"size": 12}),
        help_text="None chosen: every item of the chosen forms. Choose some to narrow a form to them.",
    )
    events = dj.MultipleChoiceField(
        required=False, widget=dj.CheckboxSelectMultiple, help_text="None ticked: every event."
    )
    sites = dj.MultipleChoiceField(
        required=False, widget=dj.CheckboxSelectMultiple, help_text="None ticked: all your sites."
    )
    subjects = dj.CharField(
        required=False,
        widget=dj.Textarea(attrs={"rows": 2}),
        help_text="Subject ids separated by spaces or commas; empty: all subjects.",
    )
    cohort = dj.CharField(
        required=False,
        label="Cohort filter",
        help_text="An expression in the branching-logic language over the study's items.",
    )
    checkboxes = dj.ChoiceField(choices=list(CHECKBOX_MODES.items()), initial="split", widget=dj.RadioSelect)
    labels = dj.BooleanField(
        required=False,
        label="Meanings instead of codes (CSV, Excel, Parquet; statistical formats carry both)",
    )
    date_mode = dj.ChoiceField(label="Dates", initial="shift", widget=dj.RadioSelect)
    rehash_ids = dj.BooleanField(required=False, label="Replace subject ids by ids made for this export only")
    drop_free_text = dj.BooleanField(required=False, label="Leave out free-text items")
    imaging = dj.BooleanField(required=False, initial=True, label="Imaging columns")
    measurements = dj.BooleanField(
        required=False,
        label="Imaging measurements and responses",
        help_text="Three more tables: every measured value of every lesion, the response at each "
        "timepoint (RECIST 1.1, mRECIST) and the best response of each subject, joined on subject and event.",
    )
    identified = dj.BooleanField(
        required=False, label="Identified export (identifier items and, if chosen, real dates)"
    )
    reason = dj.CharField(
        required=False, label="Reason for the identified export", help_text="Written to the audit trail."
    )
    include_files = dj.BooleanField(
        required=False,
        label="Include file contents (files/ in the zip)",
        help_text="Identified exports only, for a role that may download files: a file's content "
        "cannot be de-identified. The file columns then give each file's path in the zip.",
    )

    def __init__(self, *args, study, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study
        self.may_identify = access.can(user, "export_identified", study)
        form_choices, item_groups, events = schedule_choices(study)
        self.fields["forms"].choices = form_choices
        self.fields["items"].choices = item_groups
        self.fields["events"].choices = events
        # The example names this study's own items, so copying it gives a filter that runs.
        sample = cohort_filter.example(cohort_filter.study_fields(study.schedule))
        if sample:
            self.fields["cohort"].help_text = (
                f"An expression in the branching-logic language over the study's items, e.g. {sample}. "
                "Names and codes are checked before the export starts."
            )
        self.fields["sites"].choices = [
            (s.code, f"{s.code} — {s.name}") for s in access.sites_visible_to(user, study)
        ]
        modes = [(k, v) for k, v in DATE_MODES.items() if k != "none" or self.may_identify]
        self.fields["date_mode"].choices = modes
        if not self.may_identify:
            del self.fields["identified"]
            del self.fields["reason"]
            del self.fields["include_files"]

    def clean(self):
        data = super().clean()
        if data.get("identified") and not (data.get("reason") or "").strip():
            self.add_error(
                "reason", "Give the reason for exporting identifiers; it goes into the audit trail."
            )
        if data.get("date_mode") == "none" and not data.get("identified"):
            self.add_error(
                "date_mode", "Real dates come only with an identified export; tick it, or shift dates."
            )
        return data

    def spec(self) -> ExportSpec:
        data = self.cleaned_data
        return ExportSpec(
            layout=data["layout"],
            formats=list(data["formats"]),
            forms=list(data["forms"]),
            items=list(data["items"]),
            events=list(data["events"]),
            sites=list(data["sites"]),
            subjects=_split(data["subjects"]),
            cohort=(data.get("cohort") or "").strip(),
            checkboxes=data["checkboxes"],
            labels=data["labels"],
            identified=bool(data.get("identified")),
            reason=(data.get("reason") or "").strip(),
            date_mode=data["date_mode"],
            rehash_ids=data["rehash_ids"],
            drop_free_text=data["drop_free_text"],
            imaging=bool(data.get("imaging", False)),
            measurements=bool(data.get("measurements", False)),
            include_files=bool(data.get("include_files")),
        )
