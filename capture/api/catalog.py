"""What the API needs to know about a form's items, and the de-identification rule.

One place answers "which items of this form identify a person, which are dates"
for both the REST API and the REDCap endpoint, so the two never disagree.

De-identified view (users whose role lacks `view_identifiers`, e.g. statisticians and
monitors): identifier items are left out, and every date and date-time moves by the
subject's `date_shift_days` — the same shift the exports and DICOM de-identification use,
so intervals stay true.
"""

from __future__ import annotations

from dataclasses import dataclass

from capture.definitions.models import DataElement, FormDefinition
from capture.studies.disclosure import Disclosure, shift_text

DATE_TYPES = ("date", "datetime")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    datatype: str
    identifier: bool
    codes: tuple[tuple[str, str], ...]  # (code, meaning) in order
    widget: str
    group: str | None  # the repeating group's name, if the item sits in one
    max_repeats: int | None
    matrix_group: str | None
    section: str
    item: dict
    element: DataElement

    @property
    def multiple(self) -> bool:
        return self.widget == "checkbox"


def form_fields(form: FormDefinition, _cache: dict | None = None) -> list[Field]:
    """Every item of the form with its element resolved, in form order (one query)."""
    if _cache is not None and form.pk in _cache:
        return _cache[form.pk]
    elements = {
        e.ref: e for e in DataElement.objects.filter(forms=form).prefetch_related("permissible_values")
    }
    groups = {}
    for section in form.spec["sections"]:
        for entry in section["items"]:
            if "group" in entry:
                groups[entry["group"]] = entry
    fields = []
    for item in form.items():
        element = elements[item["element"]]
        group = groups.get(item["group"]) if item["group"] else None
        fields.append(
            Field(
                name=item["name"],
                label=item.get("label") or element.question,
                datatype=element.datatype,
                identifier=element.identifier,
                codes=tuple((pv.code, pv.meaning) for pv in element.permissible_values.all()),
                widget=item.get("widget") or "",
                group=item["group"] if item["repeating"] else None,
                max_repeats=(group or {}).get("max_repeats") if item["repeating"] else None,
                matrix_group=item["group"] if group and group.get("matrix") else None,
                section=item["section"],
                item=item,
                element=element,
            )
        )
    if _cache is not None:
        _cache[form.pk] = fields
    return fields


def deidentified_for(user, study) -> bool:
    """True when the user gets de-identified data from the API (the disclosure policy decides)."""
    return not Disclosure.for_user(user, study).identified


def shift(datatype: str, value, days: int):
    """Move a stored date or date-time by `days`; other values (and missing-data codes) unchanged."""
    if datatype not in DATE_TYPES:
        return value
    return shift_text(value, days)


def present_data(fields: list[Field], data: dict, *, deidentified: bool, shift_days: int) -> dict:
    """A record's stored values as the user may see them (the disclosure policy's rule)."""
    if not deidentified:
        return data
    return _DEID.record_data(_Shift(shift_days), {f.name: f for f in fields}, data)


@dataclass(frozen=True)
class _Shift:
    date_shift_days: int


_DEID = Disclosure(study_id=0, identified=False)
