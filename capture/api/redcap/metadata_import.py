"""REDCap's definition imports on a study in development: importMetadata (a data dictionary) and the
arms, events and instrument-event mapping of a longitudinal project.

Decision (issue 14): as in REDCap, they work while the study is in development and answer REDCap's
own production wording otherwise (studies.services.require_writable, asked in views._dispatch).
Each import is the study's REDCap project as the dictionary export writes it, with the imported
part replaced, read by the converter of "New study from a file" and loaded by
definitions.services.update_study_definitions: changed forms and the schedule become new versions,
audited, all or nothing. Capture's limits, each said in the refusal:
- only a study made from a REDCap dictionary (its forms REDCap instruments) takes them;
- a study with enrolled subjects keeps its schedule version, so no import can orphan a record;
- a Capture event holds at least one form: a new event (or arm) comes in through the
  instrument-event mapping, which creates it; an events or arms import then names and times it;
- a longitudinal study designates no new instrument by itself, so importMetadata refuses one there.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from django.http import HttpResponse

from capture.definitions import services as definitions
from capture.definitions.converters import Conversion, redcap
from capture.studies.models import Study

from . import record_import, render
from .params import Params, RedcapError

_ARM_COLUMNS = ["arm_num", "name"]
_EVENT_COLUMNS = ["event_name", "arm_num", "unique_event_name", "day_offset", "offset_min", "offset_max"]
_MAPPING_COLUMNS = ["arm_num", "unique_event_name", "form"]


@dataclass
class _Project:
    """A study's definitions as REDCap exports them: the dictionary CSV and the schedule's rows."""

    dictionary: str
    arms: list[dict]
    events: list[dict]
    mapping: list[dict]
    repeating: list[str]
    instruments: list[str]
    longitudinal: bool


def _csv_dicts(text: str) -> list[dict]:
    return [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]


def _current(study: Study) -> _Project:
    forms, elements, schedule = definitions.study_definitions(study)
    if not all(f.instrument for f in forms):
        # Its forms are Capture definitions (caDSR elements among them), which a dictionary would replace
        # with local copies under new names.
        raise RedcapError(
            f"{study.name} was not made from a REDCap data dictionary, so its definitions do not change "
            "through the REDCap API. Nothing was imported. Fix: load new versions of its definition files "
            "(docs/definitions.md)."
        )
    record_id = study.record_id_field if forms and forms[0].instrument else ""
    text, _ = redcap.write_dictionary(forms, elements, record_id)
    files = redcap.write_schedule(schedule, {f.ref: f for f in forms})
    names = {f.ref: f.instrument or f.form for f in forms}
    entries = [e for arm in schedule.arms for event in arm.events for e in event.forms]
    return _Project(
        dictionary=text,
        arms=_csv_dicts(files["arms"]),
        events=_csv_dicts(files["events"]),
        mapping=_csv_dicts(files["mapping"]),
        repeating=sorted({names[e.form] for e in entries if e.repeating}),
        instruments=list(names.values()),
        longitudinal=sum(len(arm.events) for arm in schedule.arms) > 1,
    )


def _to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    return out.getvalue()


def _rows(p: Params) -> list[dict]:
    fmt = p.get("format", "xml").lower() or "xml"
    if fmt not in ("json", "csv", "xml"):
        raise RedcapError('The value of the parameter "format" is not valid: use json, csv or xml.')
    if "data" not in p.data:
        raise RedcapError('The parameter "data" is missing.')
    return [row for row in record_import.parse_rows(fmt, "flat", p.get("data"), "") if any(row.values())]


def _fields_by_line(text: str) -> dict[int, str]:
    """{line where a dictionary row starts: its field name} of the CSV handed to the converter."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    found, line = {}, reader.line_num + 1
    for cells in reader:
        found[line] = cells[0] if cells else ""
        line = reader.line_num + 1
    return found


def _refusal(conversion: Conversion, what: str, fields: dict[int, str]) -> RedcapError:
    """REDCap-style refusal listing the converter's errors, each dictionary one naming its field."""
    problems = []
    for problem in conversion.errors:
        schedule_file = problem.message.startswith(("arms file", "events file", "mapping file"))
        name = "" if schedule_file else fields.get(problem.line or 0)
        named = f"field {name!r}" if name else ""
        problems.append(f"{named} ({problem})" if named and named not in str(problem) else str(problem))
    return RedcapError(f"There were errors in the {what}, so nothing was imported: " + "; ".join(problems))


def _load(user, study: Study, project: _Project, *, what: str, schedule: bool = True) -> None:
    """Convert the project and load it as the study's new definitions (all or nothing)."""
    longitudinal = schedule or project.longitudinal
    conversion = definitions.convert(
        "redcap",
        project.dictionary,
        source=f"REDCap API ({what})",
        project=study.schedule.name,
        title=study.schedule.title,
        arms=_to_csv(project.arms, _ARM_COLUMNS).encode() if longitudinal else None,
        events=_to_csv(project.events, _EVENT_COLUMNS).encode() if longitudinal else None,
        mapping=_to_csv(project.mapping, _MAPPING_COLUMNS).encode() if longitudinal else None,
        repeating=[r for r in project.repeating if r in project.instruments],
    )
    if conversion.errors:
        raise _refusal(conversion, what, _fields_by_line(project.dictionary))
    definitions.update_study_definitions(actor=user, study=study, conversion=conversion)


def _count(p: Params, n: int) -> HttpResponse:
    return render.value_response(p.choice("returnFormat", ("json", "csv", "xml"), "xml"), n)


# ---------------------------------------------------------------------------- importMetadata


def import_metadata(user, study: Study, p: Params) -> HttpResponse:
    """A whole data dictionary replaces the study's forms; answers the number of fields imported."""
    rows = _rows(p)
    if not rows:
        raise RedcapError("The data dictionary has no fields, so nothing was imported.")
    project = _current(study)
    instruments = list(dict.fromkeys(row.get("form_name", "").strip() for row in rows))
    new = [i for i in instruments if i and i not in project.instruments]
    if project.longitudinal and new:
        raise RedcapError(
            f"The instrument(s) {', '.join(new)} are new, and {study.name} is longitudinal: Capture keeps only "
            "instruments designated for an event. Nothing was imported. Fix: load the dictionary with its "
            "instrument-event mapping on the study's definitions page (Update definitions from a file)."
        )
    columns = [c for c, _ in redcap.COLUMNS if any(c in row for row in rows)]
    columns += [c for c in dict.fromkeys(k for row in rows for k in row) if c not in columns]
    project.dictionary = _to_csv(rows, columns)
    project.mapping = [m for m in project.mapping if m["form"] in instruments]
    project.instruments = instruments
    _load(user, study, project, what="data dictionary", schedule=False)
    return _count(p, len(rows))


# ---------------------------------------------------------------------------- arms, events, mapping


def _unique_name(row: dict) -> str:
    """An event's unique name: the given one, else REDCap's rule (its label, 18 characters, the arm)."""
    given = (row.get("unique_event_name") or "").strip()
    if given:
        return given
    label = re.sub(r"[^a-z0-9]+", "_", (row.get("event_name") or "").lower()).strip("_")[:18]
    return f"{label}_arm_{row.get('arm_num', '').strip()}"


def _need(rows: list[dict], columns: tuple[str, ...], what: str) -> None:
    for n, row in enumerate(rows, start=1):
        missing = [c for c in columns if not str(row.get(c, "")).strip()]
        if missing:
            raise RedcapError(f"The {what} in row {n} lacks {', '.join(missing)}; nothing was imported.")


def import_arms(user, study: Study, p: Params) -> HttpResponse:
    """Rename or add arms (override=1: the arms are exactly these; the others go with their events)."""
    rows = _rows(p)
    _need(rows, ("arm_num", "name"), "arm")
    project = _current(study)
    given = {row["arm_num"].strip(): row["name"].strip() for row in rows}
    known = {arm["arm_num"] for arm in project.arms}
    empty = sorted(set(given) - known)
    if empty:
        raise RedcapError(
            f"Arm {', '.join(empty)} has no events: a Capture arm holds events that collect forms, so nothing "
            "was imported. Fix: import the instrument-event mapping naming the arm's events first (it creates "
            "the arm), then its name."
        )
    kept = set(given) if p.flag("override") else known
    project.arms = [
        {"arm_num": a["arm_num"], "name": given.get(a["arm_num"], a["name"])} for a in project.arms
    ]
    project.arms = [a for a in project.arms if a["arm_num"] in kept]
    project.events = [e for e in project.events if e["arm_num"] in kept]
    project.mapping = [m for m in project.mapping if m["arm_num"] in kept]
    _load(user, study, project, what="arms")
    return _count(p, len(rows))


def import_events(user, study: Study, p: Params) -> HttpResponse:
    """Change events' labels and day offsets (override=1: the events are exactly these)."""
    rows = _rows(p)
    _need(rows, ("event_name", "arm_num"), "event")
    project = _current(study)
    imported = {}
    for row in rows:
        row = {k: str(v).strip() for k, v in row.items()}
        row.setdefault("day_offset", row.get("days_offset", ""))
        imported[_unique_name(row)] = {**row, "unique_event_name": _unique_name(row)}
    mapped = {m["unique_event_name"] for m in project.mapping}
    empty = sorted(set(imported) - mapped)
    if empty:
        raise RedcapError(
            f"The event(s) {', '.join(empty)} have no instruments: a Capture event holds at least one form, so "
            "nothing was imported. Fix: import the instrument-event mapping naming the event first (it creates "
            "the event), then its label and offsets."
        )
    events = [imported.get(e["unique_event_name"], e) for e in project.events]
    if p.flag("override"):
        events = [e for e in events if e["unique_event_name"] in imported]
    project.events = events
    kept = {e["unique_event_name"] for e in events}
    project.mapping = [m for m in project.mapping if m["unique_event_name"] in kept]
    _load(user, study, project, what="events")
    return _count(p, len(rows))


def import_mapping(user, study: Study, p: Params) -> HttpResponse:
    """Replace the instrument-event mapping of the arms named; an unknown event or arm is created."""
    rows = [{k: str(v).strip() for k, v in row.items()} for row in _rows(p)]
    _need(rows, ("arm_num", "unique_event_name", "form"), "mapping")
    project = _current(study)
    unknown = sorted({row["form"] for row in rows} - set(project.instruments))
    if unknown:
        raise RedcapError(
            f"The instrument(s) {', '.join(unknown)} are not in the project, so nothing was imported. Fix: use "
            f"instruments of the data dictionary ({', '.join(project.instruments)})."
        )
    arms = {row["arm_num"] for row in rows}
    for arm in sorted(arms - {a["arm_num"] for a in project.arms}):
        project.arms.append({"arm_num": arm, "name": f"Arm {arm}"})
    events = {e["unique_event_name"] for e in project.events}
    for row in rows:
        if row["unique_event_name"] not in events:
            events.add(row["unique_event_name"])
            label = redcap.event_key(row["unique_event_name"], row["arm_num"]).replace("_", " ").capitalize()
            project.events.append({**row, "event_name": label, "day_offset": "0"})
    project.mapping = [m for m in project.mapping if m["arm_num"] not in arms] + rows
    _load(user, study, project, what="instrument-event mapping")
    return _count(p, len(rows))


def import_definitions(user, study: Study, content: str, p: Params) -> HttpResponse:
    """The import of `content` (metadata, arm, event or formEventMapping)."""
    handler = {
        "metadata": import_metadata,
        "arm": import_arms,
        "event": import_events,
        "formEventMapping": import_mapping,
    }[content]
    return handler(user, study, p)
