"""A study seen as a REDCap project: its instruments, events, fields and export columns.

Mapping (see docs/api.md):
- the record id field is the study's `record_id_field` (a REDCap-made study keeps its own, e.g.
  `study_id`; others `record_id`), Capture's subject id, first in the dictionary;
- a form is an instrument, named by its `instrument:` (REDCap's name) when it has one; a field name
  another instrument took already becomes `<field>_<instrument>`; each event is `<event>_arm_<n>` (n = the arm's position, from 1);
  a schedule of one arm with one event is a classic (non-longitudinal) project;
- a form marked `repeating` at an event is a repeating instrument there; an event marked `repeats`
  (all its forms repeat together) is a repeating event: its rows name the instance, no instrument;
- a checkbox item exports as `<item>___<code>` columns; an item of a repeating group
  (REDCap has none) exports as `<item>_1` … `<item>_<max_repeats>` (10 when the group sets no maximum);
- each instrument has `<form>_complete` (0 Incomplete, 1 Unverified, 2 Complete).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from capture.definitions.models import Event, EventForm, FormDefinition
from capture.studies.models import Study

from ..catalog import Field, form_fields

RECORD_ID = "record_id"  # the record id field of a study not made from a REDCap project
DEFAULT_GROUP_COLUMNS = 10
STATUS_LABELS = {0: "Incomplete", 1: "Unverified", 2: "Complete"}
FILE_MARK = "[document]"  # a file field's value in a record export (as REDCap's)


@dataclass(frozen=True)
class RcEvent:
    event: Event
    arm_num: int
    arm_name: str
    unique_name: str
    form_names: tuple[str, ...]  # instrument names (REDCap's), in the event's order
    repeating: frozenset[str]  # instrument names
    # The whole event repeats (REDCap's repeating event): its rows name an instance, no instrument.
    repeats: bool = False

    @property
    def label(self) -> str:
        return self.event.title


@dataclass(frozen=True)
class Column:
    """One export column and what it holds. `form` is the REDCap instrument name."""

    name: str
    form: str
    field: Field | None  # None for `<form>_complete`
    code: str = ""  # checkbox columns: the choice
    row: int = 0  # repeating-group columns: the row (1-based)
    field_name: str = ""  # the field's REDCap name (its item name, unless another form took it)

    @property
    def is_complete(self) -> bool:
        return self.field is None

    @property
    def item(self) -> Field:
        """The field this column holds; a `<form>_complete` column holds none (ask `is_complete` first)."""
        if self.field is None:
            raise ValueError(f"{self.name} is a form status column: it holds no field.")
        return self.field


@dataclass
class Instrument:
    name: str  # REDCap's instrument name (the form's `instrument:`, else the form's name)
    form: FormDefinition
    fields: list[Field]
    columns: list[Column] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.form.title

    @property
    def form_name(self) -> str:
        """Capture's name of the form (what FormRecord.form_name holds)."""
        return self.form.name


def _arm_num(arm, position: int) -> int:
    """A REDCap-made arm keeps its number (`arm_3`); others are numbered by position from 1."""
    match = re.fullmatch(r"arm_(\d+)", arm.name)
    return int(match.group(1)) if match else position


class Project:
    """A study as REDCap names it. Instruments are keyed by their REDCap name everywhere here;
    `form_of` / `instrument_of` translate at the database (FormRecord.form_name)."""

    def __init__(self, study: Study):
        self.study = study
        self.record_id = study.record_id_field or RECORD_ID
        self.arms = list(study.schedule.arms.order_by("order").prefetch_related("events__event_forms__form"))
        self.events: list[RcEvent] = []
        self.instruments: dict[str, Instrument] = {}
        self.event_forms: dict[tuple[int, str], EventForm] = {}  # (event pk, instrument) -> slot
        self.form_of: dict[str, str] = {}  # instrument -> Capture form name
        self.instrument_of: dict[str, str] = {}  # Capture form name -> instrument
        cache: dict = {}
        whole = {
            (arm["name"], event["name"])
            for arm in (study.schedule.spec or {}).get("arms", [])
            for event in arm.get("events", [])
            if event.get("repeats")
        }
        for position, arm in enumerate(self.arms, start=1):
            arm_num = _arm_num(arm, position)
            for event in arm.events.all():
                names = [self._instrument(ef.form, cache) for ef in event.event_forms.all()]
                for ef, name in zip(event.event_forms.all(), names, strict=True):
                    self.event_forms[(event.pk, name)] = ef
                self.events.append(
                    RcEvent(
                        event=event,
                        arm_num=arm_num,
                        arm_name=arm.title,
                        unique_name=f"{event.name}_arm_{arm_num}",
                        form_names=tuple(names),
                        repeating=frozenset(
                            n for ef, n in zip(event.event_forms.all(), names, strict=True) if ef.repeating
                        ),
                        repeats=(arm.name, event.name) in whole,
                    )
                )
        self._in_dictionary_order()
        self.longitudinal = len(self.events) > 1
        self.has_repeating = any(e.repeating for e in self.events)
        self.events_by_name = {e.unique_name: e for e in self.events}
        self.events_by_id = {e.event.pk: e for e in self.events}
        self._make_columns()
        self.missing_codes = {c["code"]: c["meaning"] for c in study.missing_codes}

    def _instrument(self, form: FormDefinition, cache: dict) -> str:
        """The REDCap name of `form`, registering its instrument the first time it is seen."""
        if form.name in self.instrument_of:
            return self.instrument_of[form.name]
        name = (form.spec or {}).get("instrument") or form.name
        if name in self.instruments:  # two forms claim one instrument name: keep Capture's
            name = form.name
        # The record id is the subject id: a dictionary whose record id was alone on its instrument
        # keeps it there as an item (a form needs one), and older REDCap-made studies kept it too.
        # Descriptive text is not data: REDCap exports no column for it.
        fields = [
            f for f in form_fields(form, cache) if f.name != self.record_id and f.widget != "descriptive"
        ]
        self.instruments[name] = Instrument(name, form, fields)
        self.form_of[name], self.instrument_of[form.name] = form.name, name
        return name

    def _in_dictionary_order(self) -> None:
        """A REDCap-made study's instruments in the order their forms were first loaded (its
        dictionary's order, as REDCap lists them), not the order events happen to name them in.
        Other studies keep the schedule's order."""
        if not all((inst.form.spec or {}).get("instrument") for inst in self.instruments.values()):
            return
        first: dict[str, int] = {}
        names = [inst.form_name for inst in self.instruments.values()]
        for name, pk in FormDefinition.objects.filter(name__in=names).values_list("name", "pk"):
            first[name] = min(pk, first.get(name, pk))
        ordered = sorted(self.instruments.values(), key=lambda inst: first.get(inst.form_name, 0))
        self.instruments = {inst.name: inst for inst in ordered}

    def _make_columns(self) -> None:
        """Every instrument's export columns; a field name another form took already (or the record
        id's) gets `<field>_<instrument>`, as the dictionary download names it."""
        self.columns: dict[str, Column] = {}
        self.fields_by_name: dict[str, tuple[str, Field]] = {}
        self.rc_names: dict[tuple[str, str], str] = {}  # (instrument, item name) -> REDCap field name
        taken = {self.record_id}
        for inst in self.instruments.values():
            for f in inst.fields:
                name = f.name if f.name not in taken else f"{f.name}_{inst.name}"[:100]
                taken.add(name)
                self.fields_by_name[name] = (inst.name, f)
                self.rc_names[(inst.name, f.name)] = name
                for column in field_columns(inst.name, f, name):
                    inst.columns.append(column)
                    self.columns[column.name] = column
            complete = Column(f"{inst.name}_complete", inst.name, None)
            inst.columns.append(complete)
            self.columns[complete.name] = complete

    @property
    def first_form(self) -> str:
        return next(iter(self.instruments), "")

    def event_for(self, subject_arm_id: int, unique_name: str | None) -> RcEvent | None:
        if not self.longitudinal:
            return self.events[0] if self.events else None
        event = self.events_by_name.get(unique_name or "")
        if event is None or event.event.arm_id != subject_arm_id:
            return None
        return event

    def first_event(self, subject_arm_id: int) -> RcEvent | None:
        """Where REDCap keeps a record that has no data yet: the first event of its arm."""
        return next((e for e in self.events if e.event.arm_id == subject_arm_id), None)


def dag_key(text: str) -> str:
    """A DAG's unique name and a site code compared as REDCap users write them: `site_a` is `SITEA`."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def unique_group_name(name: str) -> str:
    """The unique name REDCap makes of a data access group's name: lower case, other characters as
    single underscores, none at either end, at most 18 characters ("Site A" is `site_a`)."""
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return text[:18].rstrip("_")


def dag_name(site) -> str:
    """A site's DAG unique name in REDCap's surfaces: the name REDCap makes of the site's name when
    that is the site's code give or take case and underscores (a migrated DAG: site `SITEA`, "Site A",
    is `site_a` again), else the code in lower case. Site codes are matched with `dag_key`."""
    made = unique_group_name(site.name)
    return made if made and dag_key(made) == dag_key(site.code) else site.code.lower()


def group_width(f: Field) -> int:
    return f.max_repeats or DEFAULT_GROUP_COLUMNS


def field_columns(instrument: str, f: Field, name: str = "") -> list[Column]:
    """The export columns of one item (REDCap's "export field names"); `name` is its REDCap name."""
    name = name or f.name
    if f.group:
        return [
            Column(f"{name}_{n}", instrument, f, row=n, field_name=name) for n in range(1, group_width(f) + 1)
        ]
    if f.multiple:
        return [
            Column(f"{name}___{_checkbox_suffix(code)}", instrument, f, code=code, field_name=name)
            for code, _ in f.codes
        ]
    return [Column(name, instrument, f, field_name=name)]


def _checkbox_suffix(code: str) -> str:
    # REDCap lower-cases checkbox codes in export names and turns other characters into "_".
    return "".join(c if c.isalnum() else "_" for c in code.lower())


# ----------------------------------------------------------------------------- the dictionary

METADATA_KEYS = [
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
]


def _type_and_validation(f: Field) -> tuple[str, str, str]:
    """(field_type, validation, choices or calculation)."""
    choices = " | ".join(f"{code}, {meaning}" for code, meaning in f.codes)
    if f.item.get("calculation"):
        return "calc", "", f.item["calculation"]
    if f.codes:
        if f.multiple:
            return "checkbox", "", choices
        return ("radio" if f.widget == "radio" else "dropdown"), "", choices
    kind = f.datatype
    if kind == "boolean":
        return "yesno", "", ""
    if kind == "file":
        return "file", "", ""
    if kind == "text":
        return ("notes" if f.widget == "textarea" else "text"), "", ""
    if kind == "integer":
        return "text", "integer", ""
    if kind == "decimal":
        places = f.element.decimal_places
        return "text", (f"number_{places}dp" if places else "number"), ""
    if kind == "date":
        return "text", "date_ymd", ""
    if kind == "datetime":
        return "text", "datetime_ymd", ""
    if kind == "time":
        return "text", "time", ""
    return "text", "", ""


def _bound(f: Field, value: str) -> str:
    """A min/max as REDCap writes it: 120, not 120.0."""
    if not value or f.datatype not in ("integer", "decimal"):
        return value or ""
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    return str(int(number)) if number == number.to_integral_value() else format(number.normalize(), "f")


def metadata(project: Project) -> list[dict]:
    rows = [
        {
            **dict.fromkeys(METADATA_KEYS, ""),
            "field_name": project.record_id,
            "form_name": project.first_form,
            "field_type": "text",
            "field_label": "Subject ID",
        }
    ]
    for inst in project.instruments.values():
        section = None
        for f in inst.fields:
            field_type, validation, choices = _type_and_validation(f)
            note = f.item.get("field_note") or ""
            if f.element.unit and not note:
                note = f.element.unit
            base = {
                **dict.fromkeys(METADATA_KEYS, ""),
                "form_name": inst.name,
                "field_type": field_type,
                "select_choices_or_calculations": choices,
                "field_note": note,
                "text_validation_type_or_show_slider_number": validation,
                "text_validation_min": _bound(f, f.element.min_value),
                "text_validation_max": _bound(f, f.element.max_value),
                "identifier": "y" if f.identifier else "",
                "branching_logic": f.item.get("branching") or "",
                "required_field": "y" if f.item.get("required") else "",
                "matrix_group_name": f.matrix_group or "",
                "field_annotation": f.item.get("annotation") or "",
            }
            rc_name = project.rc_names[(inst.name, f.name)]
            names = (
                [(rc_name, f.label)]
                if not f.group
                else [(c.name, f"{f.label} ({c.row})") for c in field_columns(inst.name, f, rc_name)]
            )
            for name, label in names:
                row = {**base, "field_name": name, "field_label": label}
                if f.section != section:
                    row["section_header"] = f.section
                    section = f.section
                rows.append(row)
    return rows


def export_field_names(project: Project) -> list[dict]:
    rid = project.record_id
    rows = [{"original_field_name": rid, "choice_value": "", "export_field_name": rid}]
    for inst in project.instruments.values():
        for column in inst.columns:
            if column.is_complete:
                continue
            original = column.name if column.item.group else column.field_name
            rows.append(
                {
                    "original_field_name": original,
                    "choice_value": column.code,
                    "export_field_name": column.name,
                }
            )
    return rows


# ----------------------------------------------------------------------------- values


def raw_value(f: Field, value) -> str:
    """A stored value as REDCap's raw export text (a `*_comma_decimal` field's with a comma, as
    REDCap writes it)."""
    if value is None or value == "":
        return ""
    text = str(value)
    if f.datatype == "file" and text.startswith("file:"):
        return FILE_MARK  # REDCap exports this for an uploaded file; content=file gives the file
    if f.datatype == "decimal" and isinstance(value, int | float) and not isinstance(value, bool):
        places = f.element.decimal_places
        text = f"{value:.{places}f}" if places else format(Decimal(str(value)).normalize(), "f")
    if f.datatype == "decimal" and ((f.element.spec or {}).get("validation") or "").endswith("comma_decimal"):
        text = text.replace(".", ",")
    return text


def label_value(project: Project, f: Field, value) -> str:
    text = raw_value(f, value)
    if text in project.missing_codes:
        return project.missing_codes[text]
    if f.codes:
        return dict(f.codes).get(text, text)
    if f.datatype == "boolean":
        return {"1": "Yes", "0": "No"}.get(text, text)
    return text
