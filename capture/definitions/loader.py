"""Load definition files into the database: validate everything, then write in one transaction.

`parse_paths` reads and validates files (no database writes); `load_definitions`
checks them against what is already loaded and writes. Definitions that come from a
converter (capture/definitions/converters) skip the files: `check_parsed` runs the
cross-checks and `load_parsed` writes, exactly as for YAML. A definition version that
records already use never changes: different content under it is refused with
a message that says to load it under a new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.core.exceptions import PermissionDenied
from django.db import transaction
from pydantic import BaseModel, ValidationError

from capture.accounts.system import require_actor
from capture.audit.services import record_event
from capture.studies.services import may_create_studies

from . import models as m
from .expressions import ExpressionError, events_used, fields_used
from .schema import DataElement, ElementFile, FormFile, ItemGroup, ScheduleFile, dump, iter_items

KINDS: dict[str, type[BaseModel]] = {"elements": ElementFile, "form": FormFile, "schedule": ScheduleFile}


class DefinitionError(Exception):
    """One or more definition problems; each message names the file, the place and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ParsedSet:
    elements: dict[str, tuple[str, DataElement]] = field(default_factory=dict)  # ref -> (file, element)
    forms: dict[str, tuple[str, FormFile]] = field(default_factory=dict)
    schedules: dict[str, tuple[str, ScheduleFile]] = field(default_factory=dict)


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} unchanged"


# ---------------------------------------------------------------------------- reading


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise DefinitionError(
                [f"{path}: no such file or directory. Fix: give a path to a definition folder."]
            )
    return found


def _describe(raw: object, loc: tuple) -> str:
    """Turn a pydantic location into `sections[0].items[2] (item 'sex').datatype`."""
    text = ""
    label = ""
    node = raw
    for part in loc:
        if part in ("item", "group"):  # discriminator tags, not keys
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(node, dict):
            for key in ("name", "group", "element", "public_id", "form"):
                if key in node:
                    label = f" ({key} {node[key]!r})"
                    break
    return f"{text}{label}" if text else "(top level)"


_FIXES = {
    "extra_forbidden": "remove this key or correct its spelling (docs/definitions.md lists the keys)",
    "missing": "add this key",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "use lower case letters, digits and underscores, starting with a letter",
}


def _pydantic_problems(path: Path, raw: object, error: ValidationError) -> list[str]:
    problems = []
    for err in error.errors():
        where = _describe(raw, tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"], "correct the value as the message says")
        problems.append(f"{path}: {where}: {message}. Fix: {fix}.")
    return problems


def parse_paths(paths: Iterable[Path]) -> ParsedSet:
    """Read and validate every definition file below `paths`; raise DefinitionError listing all problems."""
    parsed = ParsedSet()
    problems: list[str] = []
    for path in _files(paths):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not valid YAML: {exc}. Fix: correct the syntax at the place shown.")
            continue
        kinds = [k for k in KINDS if isinstance(raw, dict) and k in raw]
        if len(kinds) != 1:
            problems.append(
                f"{path}: cannot tell what this file defines. Fix: start it with exactly one of "
                "`elements:`, `form:` or `schedule:`."
            )
            continue
        try:
            model = KINDS[kinds[0]].model_validate(raw)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(path, raw, exc))
            continue
        problems.extend(_collect(parsed, str(path), model))
    if problems:
        raise DefinitionError(problems)
    problems.extend(_cross_check(parsed))
    if problems:
        raise DefinitionError(problems)
    return parsed


def _collect(parsed: ParsedSet, path: str, model) -> list[str]:
    problems = []
    if isinstance(model, ElementFile):
        for index, element in enumerate(model.elements):
            other = parsed.elements.get(element.ref)
            if other and other[1] != element:
                problems.append(
                    f"{path}: elements[{index}] ({element.ref}) is also defined, differently, in {other[0]}. "
                    "Fix: keep one definition per public_id@version."
                )
            parsed.elements[element.ref] = (path, element)
        return problems
    target = parsed.forms if isinstance(model, FormFile) else parsed.schedules
    if model.ref in target and target[model.ref][1] != model:
        problems.append(
            f"{path}: {model.ref} is also defined, differently, in {target[model.ref][0]}. "
            "Fix: give one of them a new version."
        )
    target[model.ref] = (path, model)
    return problems


def _cross_check(parsed: ParsedSet) -> list[str]:
    problems: list[str] = []
    names: dict[str, str] = {}
    for ref, (path, element) in parsed.elements.items():
        # Element names become variable names in forms and exports; one name, one meaning.
        if element.name in names and names[element.name].split("@")[0] != element.public_id:
            problems.append(
                f"{path}: element {ref} uses the name {element.name!r}, already used by {names[element.name]}. "
                "Fix: choose another name."
            )
        names.setdefault(element.name, ref)
    known_elements = {ref: el for ref, (_, el) in parsed.elements.items()}
    for path, form in parsed.forms.values():
        problems.extend(_check_form(path, form, known_elements))
    known_forms = set(parsed.forms) | {f.ref for f in m.FormDefinition.objects.all()}
    for path, schedule in parsed.schedules.values():
        for a, arm in enumerate(schedule.arms):
            for e, event in enumerate(arm.events):
                seen = set()
                for f, entry in enumerate(event.forms):
                    where = f"{path}: arms[{a}].events[{e}] ({event.name}).forms[{f}]"
                    if entry.form not in known_forms:
                        problems.append(
                            f"{where}: form {entry.form} is not defined. Fix: define it under forms/ "
                            "or correct the reference."
                        )
                    name = entry.form.split("@")[0]
                    if name in seen:
                        problems.append(
                            f"{where}: form {name!r} is named twice at this event. Fix: name it once."
                        )
                    seen.add(name)
    return problems


def _element_lookup(ref: str, known: dict):
    if ref in known:
        return known[ref]
    public_id, version = ref.split("@")
    row = m.DataElement.objects.filter(public_id=public_id, version=version).first()
    return row and _spec_model(row)


def _spec_model(row: m.DataElement):
    from .schema import DataElement

    return DataElement.model_validate(row.spec)


def _check_form(path: str, form: FormFile, known: dict) -> list[str]:
    problems = []
    names: dict[str, str] = {}
    for s, section in enumerate(form.sections):
        for i, entry in enumerate(section.items):
            items = entry.items if isinstance(entry, ItemGroup) else [entry]
            group_values = []
            for j, item in enumerate(items):
                where = f"sections[{s}].items[{i}]" + (f".items[{j}]" if isinstance(entry, ItemGroup) else "")
                element = _element_lookup(item.element, known)
                if element is None:
                    problems.append(
                        f"{path}: {where}.element: element {item.element} is not defined. Fix: define it in "
                        "a file under elements/, or correct the reference."
                    )
                    continue
                name = item.name or element.name
                if name in names:
                    problems.append(
                        f"{path}: {where} (item {name!r}): the name is already used by {names[name]}. "
                        "Fix: give one of them `name:`."
                    )
                names[name] = where
                if item.widget == "checkbox" and not element.permissible_values:
                    problems.append(
                        f"{path}: {where} (item {name!r}): a checkbox needs permissible values, and "
                        f"{item.element} has none. Fix: use another widget or an enumerated element."
                    )
                group_values.append([(pv.code, pv.meaning) for pv in element.permissible_values])
            mismatched = (
                not group_values or not group_values[0] or any(v != group_values[0] for v in group_values)
            )
            if isinstance(entry, ItemGroup) and entry.matrix and mismatched:
                problems.append(
                    f"{path}: sections[{s}].items[{i}] (group {entry.group!r}): the items of a matrix "
                    "must share one non-empty set of permissible values. Fix: use elements with the same "
                    "values, or drop `matrix: true`."
                )
    return problems + _check_rules(path, form, _single_names(form, known))


def _single_names(form: FormFile, known: dict) -> set[str]:
    """The names of the form's items outside repeating groups (what a form rule may read)."""
    names = set()
    for _, group, item in iter_items(form):
        element = _element_lookup(item.element, known)
        if element is not None and not (group is not None and group.repeating):
            names.add(item.name or element.name)
    return names


def _check_rules(path: str, form: FormFile, names: set[str]) -> list[str]:
    """Each form rule parses, reads only this form's items outside repeating groups, and names one."""
    problems = []
    for r, rule in enumerate(form.rules):
        where = f"{path}: rules[{r}]"
        try:
            used = fields_used(rule.check)
        except ExpressionError as error:
            problems.append(f"{where}.check: {error.message}. Fix: write it in the expression language.")
            continue
        unknown = sorted((used | {rule.field}) - names)
        if unknown:
            problems.append(
                f"{where}: {', '.join(unknown)} is not an item of form {form.ref} outside a repeating "
                "group. Fix: name the form's own items (a rule checks one record)."
            )
        if events_used(rule.check):
            problems.append(
                f"{where}.check: a form rule reads this record only. Fix: drop the [event] prefix."
            )
    return problems


# ---------------------------------------------------------------------------- compiling


def _hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def compile_form(form: FormFile, elements: dict) -> dict:
    """The form as stored: every item carries its resolved `name`."""
    spec = dump(form)
    for section in spec["sections"]:
        for entry in section["items"]:
            for item in entry["items"] if "group" in entry else [entry]:
                item["name"] = item["name"] or elements[item["element"]].name
    return spec


# ---------------------------------------------------------------------------- writing


def load_definitions(paths: Iterable[Path], *, actor) -> LoadResult:
    """Parse and validate every file below `paths`, then write them (see `load_parsed`). Only staff
    (or the system actor) load definitions into the registry."""
    if not may_create_studies(require_actor(actor)):
        raise PermissionDenied("Only staff may load definitions. Ask an administrator to make you staff.")
    return load_parsed(parse_paths(list(paths)), actor=actor)


def check_parsed(parsed: ParsedSet) -> None:
    """The cross-file checks of `parse_paths` for definitions that came from elsewhere (a converter);
    raise DefinitionError listing every problem."""
    problems = _cross_check(parsed)
    if problems:
        raise DefinitionError(problems)


def load_parsed(parsed: ParsedSet, *, actor, audit_details: dict | None = None) -> LoadResult:
    """Write already validated definitions in one transaction, refusing changes to used versions.

    `parsed` comes from `parse_paths` or a converter (capture/definitions/converters), which must
    have run `check_parsed` on it. `audit_details` (e.g. the source file) goes into the audit row.
    The caller has decided that `actor` may load them (`load_definitions`, definitions/services).
    """
    require_actor(actor)
    result = LoadResult()
    with transaction.atomic():
        form_specs = _compile_forms(parsed)
        _refuse_changes_to_used_versions(parsed, form_specs)
        for path, element in parsed.elements.values():
            _save_element(path, element, actor, result)
        for ref, (path, form) in parsed.forms.items():
            _save_form(path, form, form_specs[ref], actor, result)
        for path, schedule in parsed.schedules.values():
            _save_schedule(path, schedule, actor, result)
        if result.created or result.updated:
            record_event(
                actor=actor,
                action="definitions.load",
                object_type="definitions",
                object_id=_hash({"c": result.created, "u": result.updated})[:16],
                after={"created": result.created, "updated": result.updated, **(audit_details or {})},
            )
    return result


def _compile_forms(parsed: ParsedSet) -> dict[str, dict]:
    elements = {ref: el for ref, (_, el) in parsed.elements.items()}
    specs = {}
    for ref, (_, form) in parsed.forms.items():
        for _, _, item in iter_items(form):
            if item.element not in elements:
                elements[item.element] = _element_lookup(item.element, {})
        specs[ref] = compile_form(form, elements)
    return specs


def _refuse_changes_to_used_versions(parsed: ParsedSet, form_specs: dict[str, dict]) -> None:
    problems = []
    for ref, (path, element) in parsed.elements.items():
        element_row = m.DataElement.objects.filter(
            public_id=element.public_id, version=element.version
        ).first()
        if element_row and element_row.content_hash != _hash(dump(element)):
            used = m.FormDefinition.objects.filter(elements=element_row, records__isnull=False).distinct()
            if used.exists():
                forms = ", ".join(f.ref for f in used)
                problems.append(
                    f"{path}: element {ref} differs from the loaded version, which records already use "
                    f"(through {forms}). A used version never changes. Fix: give the changed element a new "
                    "version (and the forms that should use it new versions too)."
                )
    for ref, (path, form) in parsed.forms.items():
        form_row = m.FormDefinition.objects.filter(name=form.form, version=form.version).first()
        if form_row and form_row.content_hash != _hash(form_specs[ref]) and form_row.records.exists():
            problems.append(
                f"{path}: form {ref} differs from the loaded version, which has "
                f"{form_row.records.count()} record(s). A used version never changes. Fix: load the changed "
                f'form as a new version (e.g. version: "{_next_version(form.version)}").'
            )
    for ref, (path, schedule) in parsed.schedules.items():
        schedule_row = m.Schedule.objects.filter(name=schedule.schedule, version=schedule.version).first()
        changed = schedule_row is not None and schedule_row.content_hash != _hash(dump(schedule))
        if changed and schedule_row and schedule_row.arms.filter(subjects__isnull=False).exists():
            problems.append(
                f"{path}: schedule {ref} differs from the loaded version, which studies with enrolled "
                "subjects use. A used version never changes. Fix: load it as a new version."
            )
    if problems:
        raise DefinitionError(problems)


def _next_version(version: str) -> str:
    head, _, tail = version.rpartition(".")
    return f"{head}.{int(tail) + 1}" if head else str(int(tail) + 1)


def _save_element(path: str, element, actor, result: LoadResult) -> None:
    spec = dump(element)
    digest = _hash(spec)
    fields = {
        "name": element.name,
        "long_name": element.long_name,
        "question": element.question,
        "definition": element.definition,
        "datatype": element.datatype,
        "max_length": element.max_length,
        "min_value": "" if element.min is None else str(element.min),
        "max_value": "" if element.max is None else str(element.max),
        "decimal_places": element.decimal_places,
        "unit": element.unit,
        "identifier": element.identifier,
        "source": element.source,
        "spec": spec,
        "content_hash": digest,
        "source_file": path,
    }
    row = m.DataElement.objects.filter(public_id=element.public_id, version=element.version).first()
    if row and row.content_hash == digest:
        result.unchanged.append(f"element {element.ref}")
        return
    before = row.spec if row else None
    if row:
        for key, value in fields.items():
            setattr(row, key, value)
        row.save()
        row.permissible_values.all().delete()
        result.updated.append(f"element {element.ref}")
    else:
        row = m.DataElement.objects.create(public_id=element.public_id, version=element.version, **fields)
        result.created.append(f"element {element.ref}")
    m.PermissibleValue.objects.bulk_create(
        m.PermissibleValue(
            element=row, order=n, code=pv.code, meaning=pv.meaning, concept_code=pv.concept or ""
        )
        for n, pv in enumerate(element.permissible_values)
    )
    if before is not None:
        record_event(
            actor=actor,
            action="definitions.element.update",
            object_type="element",
            object_id=element.ref,
            object_label=element.long_name,
            before=before,
            after=spec,
        )


def _save_form(path: str, form: FormFile, spec: dict, actor, result: LoadResult) -> None:
    digest = _hash(spec)
    row = m.FormDefinition.objects.filter(name=form.form, version=form.version).first()
    if row and row.content_hash == digest:
        result.unchanged.append(f"form {form.ref}")
        return
    before = row.spec if row else None
    values = {
        "title": form.title,
        "description": form.description,
        "spec": spec,
        "content_hash": digest,
        "source_file": path,
    }
    if row:
        for key, value in values.items():
            setattr(row, key, value)
        row.save()
        result.updated.append(f"form {form.ref}")
        record_event(
            actor=actor,
            action="definitions.form.update",
            object_type="form",
            object_id=form.ref,
            object_label=form.title,
            before=before,
            after=spec,
        )
    else:
        row = m.FormDefinition.objects.create(name=form.form, version=form.version, **values)
        result.created.append(f"form {form.ref}")
    refs = {item.element for _, _, item in iter_items(form)}
    ids = [m.DataElement.objects.get(public_id=r.split("@")[0], version=r.split("@")[1]).pk for r in refs]
    row.elements.set(ids)


def _save_schedule(path: str, schedule: ScheduleFile, actor, result: LoadResult) -> None:
    spec = dump(schedule)
    digest = _hash(spec)
    row = m.Schedule.objects.filter(name=schedule.schedule, version=schedule.version).first()
    if row and row.content_hash == digest:
        result.unchanged.append(f"schedule {schedule.ref}")
        return
    before = row.spec if row else None
    values = {
        "title": schedule.title,
        "description": schedule.description,
        "spec": spec,
        "content_hash": digest,
        "source_file": path,
    }
    if row:
        # Not used by any enrolled subject (checked above), so its arms can be rebuilt.
        for key, value in values.items():
            setattr(row, key, value)
        row.save()
        row.arms.all().delete()
        result.updated.append(f"schedule {schedule.ref}")
        record_event(
            actor=actor,
            action="definitions.schedule.update",
            object_type="schedule",
            object_id=schedule.ref,
            object_label=schedule.title,
            before=before,
            after=spec,
        )
    else:
        row = m.Schedule.objects.create(name=schedule.schedule, version=schedule.version, **values)
        result.created.append(f"schedule {schedule.ref}")
    for a, arm in enumerate(schedule.arms):
        arm_row = m.Arm.objects.create(
            schedule=row, name=arm.name, title=arm.title, subject_kind=arm.subject_kind, order=a
        )
        for e, event in enumerate(arm.events):
            event_row = m.Event.objects.create(
                arm=arm_row,
                name=event.name,
                title=event.title,
                day=event.day,
                window_before=event.window_before,
                window_after=event.window_after,
                order=e,
            )
            for f, entry in enumerate(event.forms):
                name, version = entry.form.split("@")
                m.EventForm.objects.create(
                    event=event_row,
                    form=m.FormDefinition.objects.get(name=name, version=version),
                    repeating=entry.repeating,
                    order=f,
                )
