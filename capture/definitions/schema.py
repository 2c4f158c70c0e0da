"""The YAML format of `crf_definitions/`, as validated pydantic models.

Three kinds of file, told apart by their top-level key:

* ``elements:`` a list of caDSR-style data elements;
* ``form:`` one form definition (sections, items, repeating and matrix groups);
* ``schedule:`` one schedule (arms, events, which forms at which event).

The format is documented for authors in ``docs/definitions.md``; if you add a
field here, document it there too. Cross-file checks (does the element a form
item names exist?) live in ``loader.py``, because one file cannot know them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .expressions import ExpressionError, parse

# Every datatype a data element can have. If you add one, teach the record
# validator (capture/records/validation.py) and the export codebook about it.
DATATYPES = ("text", "integer", "decimal", "date", "datetime", "time", "boolean", "file")

# Public ids that are not caDSR's carry this prefix, so that nobody mistakes a
# local element for a registered one (and the source test can tell them apart).
LOCAL_PREFIX = "capture."

NAME_RE = r"^[a-z][a-z0-9_]*$"
REF_RE = re.compile(r"^(?P<id>[A-Za-z0-9_.\-]+)@(?P<version>[0-9]+(\.[0-9]+)*)$")


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `requird:` must not vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _version(value: object) -> str:
    # YAML reads `version: 1.0` as a float; versions are strings ("1.0", "2.31").
    if isinstance(value, bool) or value is None:
        raise ValueError("version must be a string such as '1.0'")
    text = str(value)
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        raise ValueError(f"version {text!r} must look like '1', '1.0' or '2.31'")
    return text


Version = Annotated[str, BeforeValidator(_version)]


class PermissibleValue(_Strict):
    code: str
    meaning: str
    concept: str | None = Field(
        default=None, description="NCI Thesaurus concept code, only when a real source gives it"
    )

    @field_validator("code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        # `code: 1` in YAML is an int; codes are compared as text everywhere.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("concept")
    @classmethod
    def _concept_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"C\d+(:C\d+)*", value):
            raise ValueError(f"concept {value!r} is not an NCI Thesaurus code such as 'C20197'")
        return value


class DataElement(_Strict):
    public_id: str
    version: Version
    name: str = Field(pattern=NAME_RE, description="short variable name, as in a REDCap field")
    long_name: str
    question: str
    definition: str = ""
    datatype: Literal[DATATYPES]  # type: ignore[valid-type]
    max_length: int | None = Field(default=None, gt=0)
    min: float | str | None = None
    max: float | str | None = None
    decimal_places: int | None = Field(default=None, ge=0)
    unit: str = ""
    identifier: bool = False
    permissible_values: list[PermissibleValue] = []
    source: str = Field(
        default="",
        description="where the public id and values come from (file and key); required for caDSR ids",
    )
    # Optional, added for interop (docs/definitions.md, "Interop additions"). Leave them out
    # and an element means what it always meant.
    validation: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="the REDCap text validation name (email, phone, number_2dp_comma_decimal ...)",
    )
    display_format: Literal["ymd", "mdy", "dmy"] | None = Field(
        default=None, description="order in which people enter and read a date or datetime"
    )
    ontology: str | None = Field(
        default=None, description="an ontology the value comes from, e.g. REDCap's BIOPORTAL:ICD-10"
    )
    concepts: list[str] = Field(
        default=[],
        description="NCI Thesaurus codes of the data element concept (object class, property), "
        "only when a real source gives them",
    )

    @field_validator("concepts")
    @classmethod
    def _concepts_shape(cls, value: list[str]) -> list[str]:
        for code in value:
            if not re.fullmatch(r"C\d+(:C\d+)*", code):
                raise ValueError(f"concept {code!r} is not an NCI Thesaurus code such as 'C20197'")
        return value

    @field_validator("public_id", mode="before")
    @classmethod
    def _public_id_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> DataElement:
        local = self.public_id.startswith(LOCAL_PREFIX)
        if not local and not self.public_id.isdigit():
            raise ValueError(
                f"public_id {self.public_id!r} is neither a caDSR public id (digits) nor local; "
                f"give local elements an id starting with {LOCAL_PREFIX!r}"
            )
        if not local and not self.source:
            raise ValueError(
                f"caDSR element {self.public_id} needs `source:` naming the file that gives its id"
            )
        codes = [pv.code for pv in self.permissible_values]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"permissible value codes repeat: {', '.join(duplicates)}")
        if self.decimal_places is not None and self.datatype != "decimal":
            raise ValueError("decimal_places only applies to datatype 'decimal'")
        if self.display_format is not None and self.datatype not in ("date", "datetime"):
            raise ValueError("display_format only applies to datatypes 'date' and 'datetime'")
        numeric = self.datatype in ("integer", "decimal")
        for bound in (self.min, self.max):
            if bound is not None and numeric and isinstance(bound, str):
                raise ValueError(f"min/max of a {self.datatype} element must be numbers")
        if self.min is not None and self.max is not None and numeric and self.min > self.max:  # type: ignore[operator]
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    @property
    def ref(self) -> str:
        return f"{self.public_id}@{self.version}"


class ElementFile(_Strict):
    elements: list[DataElement] = Field(min_length=1)


WIDGETS = (
    "text",
    "textarea",
    "dropdown",
    "radio",
    "checkbox",
    "yesno",
    "date",
    "file",
    # interop additions: REDCap's true/false, slider (a number on a scale) and descriptive text
    "truefalse",
    "slider",
    "descriptive",
)


class Item(_Strict):
    element: str = Field(description="public_id@version of a data element")
    name: str | None = Field(default=None, pattern=NAME_RE)
    label: str | None = None
    required: bool = False
    branching: str | None = None
    calculation: str | None = None
    field_note: str | None = None
    widget: Literal[WIDGETS] | None = None  # type: ignore[valid-type]
    annotation: str | None = None
    # Optional, added for interop: presentation REDCap keeps, carried so an export gives it back.
    alignment: Literal["RV", "RH", "LV", "LH"] | None = Field(
        default=None, description="REDCap custom alignment: right/left, vertical/horizontal"
    )
    question_number: str | None = Field(default=None, description="REDCap survey question number")
    slider_labels: list[str] = Field(
        default=[], max_length=3, description="labels at the left, middle and right of a slider"
    )
    slider_number: bool = Field(default=False, description="show the slider's number")
    query: str | None = Field(
        default=None,
        description="REDCap dynamic SQL that filled the choices; not run by Capture, kept for export",
    )

    @model_validator(mode="after")
    def _slider(self) -> Item:
        if (self.slider_labels or self.slider_number) and self.widget != "slider":
            raise ValueError("slider_labels and slider_number need widget: slider")
        return self

    @field_validator("element")
    @classmethod
    def _ref_shape(cls, value: str) -> str:
        if not REF_RE.match(value):
            raise ValueError(f"element reference {value!r} must be 'public_id@version', e.g. '2200604@3.0'")
        return value


class ItemGroup(_Strict):
    """Items shown and stored together: `repeating` makes rows (one lesion per row),
    `matrix` shows items that share one value domain as a grid."""

    group: str = Field(pattern=NAME_RE)
    label: str | None = None
    repeating: bool = False
    max_repeats: int | None = Field(default=None, gt=0)
    matrix: bool = False
    ranking: bool = Field(default=False, description="matrix only: each choice may be picked once")
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _kind(self) -> ItemGroup:
        if self.repeating and self.matrix:
            raise ValueError(f"group {self.group!r} cannot be both repeating and a matrix")
        if not self.repeating and self.max_repeats is not None:
            raise ValueError(f"group {self.group!r}: max_repeats needs repeating: true")
        if self.ranking and not self.matrix:
            raise ValueError(f"group {self.group!r}: ranking needs matrix: true")
        return self


def _entry_kind(value: object) -> str:
    # A section entry with a `group:` key is a group, anything else an item; naming the
    # branch keeps errors about one kind from being reported against the other.
    if isinstance(value, dict):
        return "group" if "group" in value else "item"
    return "group" if isinstance(value, ItemGroup) else "item"


SectionEntry = Annotated[
    Annotated[Item, Tag("item")] | Annotated[ItemGroup, Tag("group")], Discriminator(_entry_kind)
]


class Section(_Strict):
    title: str
    description: str = ""
    header: bool = Field(
        default=True,
        description="false: the source gave these items no heading (REDCap fields before the first "
        "section header); the title then repeats the form's and is not a heading of its own",
    )
    items: list[SectionEntry] = Field(min_length=1)


class QualityRule(_Strict):
    """A data quality rule of a form (capture/monitoring): `expression` is true where the data
    are wrong, as in REDCap's custom rules, e.g. `[stop_date] < [start_date]`."""

    name: str = Field(pattern=NAME_RE)
    title: str
    expression: str
    field: str | None = Field(default=None, description="the item a discrepancy links to")

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            parse(value)
        except ExpressionError as error:
            raise ValueError(f"the rule's expression does not parse: {error}") from None
        return value


class FormRule(_Strict):
    """A rule across a form's fields, checked on every save (entry, imports, both APIs):
    `check` must be true, or the save is refused with `message` at `field`. A rule that reads a
    blank, a missing-data code or a field hidden by branching is not checked."""

    check: str = Field(description="an expression that must be true, e.g. '[stop_date] >= [start_date]'")
    field: str = Field(pattern=NAME_RE, description="the item the message is shown at")
    message: str = Field(min_length=1, description="what is wrong and how to fix it")


class FormFile(_Strict):
    form: str = Field(pattern=NAME_RE)
    version: Version
    title: str
    description: str = ""
    instrument: str | None = Field(
        default=None,
        pattern=NAME_RE,
        description="the REDCap instrument name this form came from (default: the form's name)",
    )
    sections: list[Section] = Field(min_length=1)
    data_quality: list[QualityRule] = Field(
        default=[], description="data quality rules checked by the monitoring job (docs/monitoring.md)"
    )
    rules: list[FormRule] = Field(default=[], description="rules across fields, checked on save")

    @property
    def ref(self) -> str:
        return f"{self.form}@{self.version}"


class EventForm(_Strict):
    form: str = Field(description="form@version")
    repeating: bool = False

    @field_validator("form")
    @classmethod
    def _ref_shape(cls, value: str) -> str:
        if not REF_RE.match(value):
            raise ValueError(f"form reference {value!r} must be 'form@version', e.g. 'demographics@1.0'")
        return value


class Event(_Strict):
    name: str = Field(pattern=NAME_RE)
    title: str
    day: int = 0
    window_before: int = Field(default=0, ge=0)
    window_after: int = Field(default=0, ge=0)
    forms: list[EventForm] = Field(min_length=1)
    # The whole event repeats (REDCap's repeating event): its forms repeat together, an instance
    # number for all of them; REDCap surfaces name its rows by event and instance, no instrument.
    repeats: bool = False

    @model_validator(mode="after")
    def _repeats_whole(self) -> Event:
        single = [f.form for f in self.forms if not f.repeating]
        if self.repeats and single:
            raise ValueError(
                f"event {self.name!r} repeats as a whole: mark each of its forms repeating: true "
                f"({', '.join(single)})"
            )
        return self

    @field_validator("forms", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        # `forms: [demographics@1.0]` is the short way of `- form: demographics@1.0`.
        if isinstance(value, list):
            return [{"form": v} if isinstance(v, str) else v for v in value]
        return value


class Arm(_Strict):
    name: str = Field(pattern=NAME_RE)
    title: str
    subject_kind: Literal["patient", "animal"] = "patient"
    events: list[Event] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_events(self) -> Arm:
        names = [e.name for e in self.events]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm {self.name!r}: event names repeat: {', '.join(repeated)}")
        return self


class ScheduleFile(_Strict):
    schedule: str = Field(pattern=NAME_RE)
    version: Version
    title: str
    description: str = ""
    arms: list[Arm] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_arms(self) -> ScheduleFile:
        names = [a.name for a in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names repeat: {', '.join(repeated)}")
        return self

    @property
    def ref(self) -> str:
        return f"{self.schedule}@{self.version}"


def iter_items(form: FormFile):
    """Yield (section, group or None, item) for every item of a form, in order."""
    for section in form.sections:
        for entry in section.items:
            if isinstance(entry, ItemGroup):
                for item in entry.items:
                    yield section, entry, item
            else:
                yield section, None, entry


# Optional keys added for interop. A definition that leaves them at their defaults must dump
# (and so hash) exactly as before they existed, or every loaded version would look changed.
# If you add an optional key, add it here with its default.
INTEROP_DEFAULTS: dict[str, object] = {
    "validation": None,
    "display_format": None,
    "ontology": None,
    "concepts": [],
    "alignment": None,
    "question_number": None,
    "slider_labels": [],
    "slider_number": False,
    "query": None,
    "ranking": False,
    "header": True,
    "instrument": None,
    "repeats": False,  # an event that repeats whole
    "data_quality": [],
    "rules": [],
}


def dump(model: BaseModel) -> dict:
    """The model as JSON data, without interop keys left at their defaults (see INTEROP_DEFAULTS)."""
    return _prune(model.model_dump(mode="json"))


def _prune(value):
    if isinstance(value, dict):
        return {
            k: _prune(v) for k, v in value.items() if not (k in INTEROP_DEFAULTS and v == INTEROP_DEFAULTS[k])
        }
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
