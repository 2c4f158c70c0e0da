"""A REDCap project's schedule: the arms, events and instrument-event mapping CSVs of a longitudinal
project read into a plan, and the plan (or, for a classic project, one event) as a ScheduleFile."""

from __future__ import annotations

import csv
import io
import re

from pydantic import ValidationError

from ...schema import Arm, Event, EventForm, ScheduleFile
from .. import Conversion
from .rows import _as_typed, _header_key, decode


def _csv_dicts(data: bytes | str, label: str, conversion: Conversion) -> list[tuple[int, dict]]:
    text = decode(data, conversion, label)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [_header_key(h).replace(" ", "_") for h in next(reader)]
    except StopIteration:
        conversion.error(f"{label} is empty. Fix: upload the file REDCap exports.")
        return []
    rows = []
    line = reader.line_num + 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if any(c.strip() for c in cells):
            rows.append(
                (
                    start,
                    {
                        h: (_as_typed(cells[i]).strip() if i < len(cells) else "")
                        for i, h in enumerate(header)
                    },
                )
            )
    return rows


def _need(rows, label: str, columns: tuple[str, ...], conversion: Conversion) -> bool:
    present = set(rows[0][1]) if rows else set()
    missing = [c for c in columns if c not in present]
    if rows and missing:
        conversion.error(
            f"{label}: the header lacks {', '.join(missing)}. Fix: export the file from REDCap's API "
            f"(columns {', '.join(columns)})."
        )
        return False
    return True


def event_key(unique_event_name: str, arm_num: str) -> str:
    """REDCap's unique event name without its arm suffix: 'visit_1_arm_1' -> 'visit_1'."""
    key = re.sub(rf"_arm_{re.escape(arm_num)}$", "", unique_event_name)
    key = re.sub(r"[^a-z0-9_]+", "_", key.lower()).strip("_")
    return key if key and key[0].isalpha() else f"event_{key}"


def _longitudinal(conversion, arms_data, events_data, mapping_data, instruments) -> dict:
    """The plan of a longitudinal project: arm_num -> {"title", "events": {unique name: {...}}}."""
    arms = _csv_dicts(arms_data, "arms file", conversion) if arms_data is not None else []
    events = _csv_dicts(events_data, "events file", conversion)
    mapping = _csv_dicts(mapping_data, "mapping file", conversion) if mapping_data is not None else []
    if mapping_data is None:
        conversion.error(
            "a longitudinal project needs its instrument-event mapping. Fix: upload the mapping CSV "
            "(arm_num,unique_event_name,form) with the events."
        )
    ok = _need(events, "events file", ("event_name", "arm_num"), conversion)
    ok = _need(mapping, "mapping file", ("arm_num", "unique_event_name", "form"), conversion) and ok
    ok = _need(arms, "arms file", ("arm_num", "name"), conversion) and ok
    if not ok:
        return {}
    arm_titles = {row["arm_num"]: row["name"] for _, row in arms}
    plan: dict = {}
    for line, row in events:
        _plan_event(conversion, plan, arm_titles, bool(arms), line, row)
    for line, row in mapping:
        _map_form(conversion, plan, instruments, line, row)
    return plan


def _plan_event(
    conversion: Conversion, plan: dict, arm_titles: dict, has_arms: bool, line: int, row: dict
) -> None:
    """Add one row of the events file to its arm in `plan`."""
    arm_num = row["arm_num"]
    unique = row.get("unique_event_name") or (
        re.sub(r"[^a-z0-9]+", "_", row["event_name"].lower()).strip("_")[:18] + f"_arm_{arm_num}"
    )
    arm = plan.setdefault(arm_num, {"title": arm_titles.get(arm_num, f"Arm {arm_num}"), "events": {}})
    if has_arms and arm_num not in arm_titles:
        conversion.error(
            f"events file: event {unique!r} is in arm {arm_num}, which the arms file does not list. "
            "Fix: add the arm or correct arm_num.",
            line=line,
        )
    try:
        day = int(float(row.get("day_offset") or 0))
        before = int(float(row.get("offset_min") or 0))
        after = int(float(row.get("offset_max") or 0))
    except ValueError:
        conversion.error("events file: day_offset, offset_min and offset_max must be numbers.", line=line)
        return
    if row.get("custom_event_label"):
        conversion.warn(
            f"events file: the custom event label {row['custom_event_label']!r} (piped from record data) "
            "is not shown by Capture.",
            line=line,
        )
    arm["events"][unique] = {
        "name": event_key(unique, arm_num),
        "title": row["event_name"],
        "day": day,
        "window_before": before,
        "window_after": after,
        "forms": [],
        "line": line,
    }


def _map_form(conversion: Conversion, plan: dict, instruments, line: int, row: dict) -> None:
    """Add one row of the mapping file (an instrument in an event) to `plan`."""
    arm = plan.get(row["arm_num"])
    event = arm and arm["events"].get(row["unique_event_name"])
    if not event:
        conversion.error(
            f"mapping file: event {row['unique_event_name']!r} of arm {row['arm_num']} is not in the events "
            "file. Fix: correct the event or upload the matching events file.",
            line=line,
        )
        return
    if row["form"] not in instruments:
        conversion.error(
            f"mapping file: instrument {row['form']!r} is not in the dictionary. Fix: correct the name.",
            line=line,
        )
        return
    event["forms"].append(row["form"])


def _schedule(
    conversion: Conversion, project: str, plan: dict | None, repeating: set[str]
) -> ScheduleFile | None:
    """The schedule of `plan`, or of one arm with one event holding every form when there is no plan."""
    by_instrument = {f.instrument: f for f in conversion.forms}
    order = list(by_instrument)

    def entries(instruments):
        return [
            EventForm(form=by_instrument[i].ref, repeating=i in repeating)
            for i in sorted(set(instruments), key=order.index)
        ]

    if plan is None:
        arms = [
            Arm(
                name="arm_1",
                title="Arm 1",
                events=[Event(name="event_1", title="Event 1", forms=entries(order))],
            )
        ]
    else:
        arms = _arms(conversion, plan, entries)
    try:
        return ScheduleFile(schedule=project, version="1.0", title=conversion.title or project, arms=arms)
    except ValidationError as exc:
        for err in exc.errors():
            conversion.error(f"schedule: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}.")
        return None


def _arms(conversion: Conversion, plan: dict, entries) -> list[Arm]:
    """The arms of a longitudinal plan; an event without instruments (or an arm without events) is left out."""
    arms = []
    for arm_num, arm in plan.items():
        events = []
        for unique, event in arm["events"].items():
            if not event["forms"]:
                conversion.warn(
                    f"events file: event {unique!r} has no instruments in the mapping; Capture events hold at "
                    "least one form, so it is left out. Fix: map an instrument to it if it collects data.",
                    line=event["line"],
                )
                continue
            events.append(
                Event(
                    name=event["name"],
                    title=event["title"],
                    day=event["day"],
                    window_before=event["window_before"],
                    window_after=event["window_after"],
                    forms=entries(event["forms"]),
                )
            )
        if events:
            arms.append(Arm(name=f"arm_{arm_num}", title=arm["title"], events=events))
    return arms
