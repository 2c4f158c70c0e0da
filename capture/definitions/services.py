"""Workflows on definitions that come from other systems: import, create or update a study, export.

A converter (capture/definitions/converters) turns a file into a `Conversion` without writing. Here a
conversion is versioned against what is loaded — unchanged definitions keep their version, changed
ones get the next version, never an in-place change — and written through the loader in one
transaction with its audit rows. Views and management commands call these functions only.
"""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet

from capture.accounts.system import require_actor
from capture.audit.services import record_event
from capture.studies import access
from capture.studies import services as study_services
from capture.studies.models import Study, Subject

from . import models as m
from .converters import Conversion, Problem
from .loader import DefinitionError, LoadResult, _hash, _next_version, compile_form, load_parsed
from .schema import DataElement, FormFile, ScheduleFile, dump, iter_items

FORMATS = {
    "redcap": "REDCap data dictionary (CSV)",
    "odm": "REDCap project XML or CDISC ODM 1.3 (XML)",
    "cadsr": "caDSR CDE XML or Form Builder (FormCart) XML",
}


def convert(
    kind: str,
    data: bytes | str,
    *,
    source: str,
    project: str = "",
    title: str = "",
    arms: bytes | None = None,
    events: bytes | None = None,
    mapping: bytes | None = None,
    repeating: tuple[str, ...] | list[str] = (),
) -> Conversion:
    """Read an uploaded file of `kind` (see FORMATS) into a Conversion; writes nothing."""
    from .converters import cadsr, odm, redcap, xmlsafe

    if kind == "redcap":
        return redcap.read_dictionary(
            data,
            project=project,
            source=source,
            title=title,
            arms=arms,
            events=events,
            mapping=mapping,
            repeating_forms=repeating,
        )
    if kind == "odm":
        return odm.read_odm(data, project=project, source=source, title=title)
    if kind == "cadsr":
        try:
            root = xmlsafe.parse(data)
        except ValueError:
            return cadsr.read_cde(data, source=source)  # reports the XML problem
        return (
            cadsr.read_formcart(data, source=source)
            if cadsr.is_formcart(root)
            else cadsr.read_cde(data, source=source)
        )
    raise ValueError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _latest(queryset):
    rows = list(queryset)
    return max(rows, key=lambda row: _version_key(row.version)) if rows else None


def _settle(latest, candidate_hash_at) -> str | None:
    """The version to use: the latest one when identical, the next one when changed, None when new."""
    if latest is None:
        return None
    if latest.content_hash == candidate_hash_at(latest.version):
        return latest.version
    return _next_version(latest.version)


def _same_version(a: str, b: str) -> bool:
    """caDSR versions are numbers: the XML export's `1` is the browser's `1.0`."""
    try:
        return _version_key(a + ".0" * (b.count(".") - a.count("."))) == _version_key(
            b + ".0" * (a.count(".") - b.count("."))
        )
    except ValueError:
        return a == b


def _released(element: DataElement, problems: list[Problem], *, in_form: bool) -> DataElement:
    """A caDSR data element (numeric public id) as loaded. caDSR never changes a released version and
    Capture never numbers one itself: the loaded row when the definition is the same (file name and
    version spelling aside), caDSR's own version when not loaded. A differing copy inside a Form
    Builder form (a form's question, a narrowed value list) becomes a local variant
    `capture.cadsr_<id>_v<version>` whose `source` names the CDE; a differing CDE export is an error."""
    rows = m.DataElement.objects.filter(public_id=element.public_id)
    row = next((r for r in rows if _same_version(r.version, element.version)), None)
    if row is None:
        return element
    candidate = element.model_copy(update={"version": row.version, "source": row.source})
    spec = dump(candidate)
    if _hash(spec) == row.content_hash:
        return candidate
    if in_form:
        return element.model_copy(
            update={
                "public_id": f"capture.cadsr_{element.public_id}_v{element.version.replace('.', '_')}",
                "version": "1.0",
                "source": f"local variant of caDSR CDE {element.public_id} v{element.version}, as "
                f"{element.source} gives it; differs from the loaded one",
            }
        )
    differing = sorted(k for k in spec.keys() | row.spec.keys() if spec.get(k) != row.spec.get(k))
    problems.append(
        Problem(
            f"caDSR CDE {element.public_id} v{element.version} is loaded already with a different "
            f"definition (from {row.source_file or row.source or 'an earlier load'}; differing: "
            f"{', '.join(differing)}); caDSR never changes a released version, so Capture neither "
            "replaces it nor invents another version number. Fix: load the loaded definition's own "
            "export, or give the differing definition a local public id (e.g. 'capture.my_element') "
            "in a definitions file.",
            where=f"element {element.name}",
        )
    )
    return element


def versioned(conversion: Conversion) -> Conversion:
    """The conversion with versions settled against the database: a definition identical to the latest
    loaded version reuses it; a changed one becomes the next version; a new one stays at its version.
    caDSR elements keep caDSR's version (`_released`); a clash is an error in the returned problems."""
    clashes: list[Problem] = []
    elements, renamed = _settled_elements(conversion.elements, clashes, in_form=conversion.kind == "formcart")
    forms, form_renamed = _settled_forms(conversion.forms, elements, renamed)
    schedule = conversion.schedule
    if schedule is not None:
        schedule = _settled_schedule(schedule, form_renamed)
    return Conversion(
        source=conversion.source,
        kind=conversion.kind,
        elements=elements,
        forms=forms,
        schedule=schedule,
        problems=list(conversion.problems) + clashes,
        title=conversion.title,
        record_id_field=conversion.record_id_field,
    )


def _settled_elements(
    converted: list[DataElement], clashes: list[Problem], *, in_form: bool
) -> tuple[list[DataElement], dict[str, str]]:
    """The elements at their settled versions, and {converted ref: settled ref} for those renamed.
    caDSR elements (numeric public ids) keep caDSR's version (`_released`); local ones are settled."""
    renamed: dict[str, str] = {}
    elements: list[DataElement] = []
    for original in converted:
        element = original
        if element.public_id.isdigit():
            element = _released(element, clashes, in_form=in_form)
        if not element.public_id.isdigit():
            latest = _latest(m.DataElement.objects.filter(public_id=element.public_id))
            version = _settle(latest, lambda v, e=element: _hash(dump(e.model_copy(update={"version": v}))))
            if version and version != element.version:
                element = element.model_copy(update={"version": version})
        if element.ref != original.ref:
            renamed[original.ref] = element.ref
        elements.append(element)
    return elements, renamed


def _with_elements(form: FormFile, version: str, renamed: dict[str, str]) -> FormFile:
    """The form at `version`, its items pointing at the renamed elements."""
    data = form.model_dump(mode="json")
    data["version"] = version
    for section in data["sections"]:
        for entry in section["items"]:
            for item in entry["items"] if "group" in entry else [entry]:
                item["element"] = renamed.get(item["element"], item["element"])
    return FormFile.model_validate(data)


def _known_elements(form: FormFile, by_ref: dict[str, DataElement]) -> dict[str, DataElement]:
    """The converted elements, plus the loaded ones the form names that the conversion lacks."""
    known = dict(by_ref)
    for _, _, item in iter_items(form):
        if item.element not in known:
            public_id, _, version = item.element.partition("@")
            row = m.DataElement.objects.filter(public_id=public_id, version=version).first()
            if row is not None:
                known[item.element] = DataElement.model_validate(row.spec)
    return known


def _settled_forms(
    converted: list[FormFile], elements: list[DataElement], renamed: dict[str, str]
) -> tuple[list[FormFile], dict[str, str]]:
    """The forms at their settled versions (compiled with their elements to compare), and
    {converted ref: settled ref} for those renamed."""
    by_ref = {e.ref: e for e in elements}
    forms: list[FormFile] = []
    form_renamed: dict[str, str] = {}
    for form in converted:
        form = _with_elements(form, form.version, renamed)
        known = _known_elements(form, by_ref)
        latest = _latest(m.FormDefinition.objects.filter(name=form.form))
        version = _settle(
            latest, lambda v, f=form, k=known: _hash(compile_form(_with_elements(f, v, renamed), k))
        )
        if version and version != form.version:
            new = _with_elements(form, version, renamed)
            form_renamed[form.ref] = new.ref
            form = new
        forms.append(form)
    return forms, form_renamed


def _settled_schedule(schedule: ScheduleFile, form_renamed: dict[str, str]) -> ScheduleFile:
    """The schedule naming the settled forms, at its settled version."""
    data = schedule.model_dump(mode="json")
    for arm in data["arms"]:
        for event in arm["events"]:
            for entry in event["forms"]:
                entry["form"] = form_renamed.get(entry["form"], entry["form"])
    schedule = ScheduleFile.model_validate(data)
    latest = _latest(m.Schedule.objects.filter(name=schedule.schedule))
    version = _settle(latest, lambda v, s=schedule: _hash(dump(s.model_copy(update={"version": v}))))
    if version and version != schedule.version:
        schedule = schedule.model_copy(update={"version": version})
    return schedule


def plan(conversion: Conversion) -> dict[str, list[str]]:
    """What confirming would do, without writing: definitions that are new, new versions of loaded
    ones, or already loaded and unchanged (for the preview page)."""
    settled = versioned(conversion)
    rows: list[tuple[str, QuerySet, str, str]] = [
        ("element", m.DataElement.objects.filter(public_id=e.public_id), e.version, e.ref)
        for e in settled.elements
    ]
    rows += [("form", m.FormDefinition.objects.filter(name=f.form), f.version, f.ref) for f in settled.forms]
    if settled.schedule is not None:
        s = settled.schedule
        rows.append(("schedule", m.Schedule.objects.filter(name=s.schedule), s.version, s.ref))
    out: dict[str, list[str]] = {"new": [], "new_version": [], "unchanged": []}
    for kind, loaded, version, ref in rows:
        versions = set(loaded.values_list("version", flat=True))
        key = "unchanged" if version in versions else "new_version" if versions else "new"
        out[key].append(f"{kind} {ref}")
    return out


def _require_clean(conversion: Conversion) -> None:
    if conversion.errors:
        raise DefinitionError([f"{conversion.source}: {p}" for p in conversion.errors])


def _audit_details(conversion: Conversion) -> dict:
    return {
        "source": conversion.source,
        "format": conversion.kind,
        "warnings": [str(p) for p in conversion.warnings],
    }


@transaction.atomic
def import_definitions(*, actor, conversion: Conversion) -> tuple[LoadResult, Conversion]:
    """Load the elements, forms and schedule of a conversion (no study). Returns the load result and the
    conversion as loaded (with its settled versions). Only staff (or the system) load definitions."""
    if not may_create_studies(require_actor(actor)):
        raise PermissionDenied("Only staff may load definitions. Ask an administrator to make you staff.")
    _require_clean(conversion)
    settled = versioned(conversion)
    _require_clean(settled)
    result = load_parsed(settled.parsed_set(), actor=actor, audit_details=_audit_details(conversion))
    return result, settled


may_create_studies = study_services.may_create_studies


@transaction.atomic
def create_study_from_conversion(
    *,
    actor,
    conversion: Conversion,
    slug: str,
    name: str,
    description: str = "",
    subject_ids: str = Study.PATTERN_IDS,
    administrator=None,
) -> tuple[Study, LoadResult]:
    """Load a converted dictionary or project file and create a study on its schedule (`administrator`:
    studies.services.create_study)."""
    if not may_create_studies(require_actor(actor)):
        raise PermissionDenied("Only staff may create studies. Ask an administrator to make you staff.")
    if conversion.schedule is None:
        raise ValidationError(
            f"{conversion.source} defines no schedule, so it cannot make a study. Fix: upload a REDCap "
            "dictionary, a REDCap project XML or an ODM file with study events."
        )
    if Study.objects.filter(slug=slug).exists():
        raise ValidationError(f"A study with the short name {slug!r} exists already; choose another.")
    result, settled = import_definitions(actor=actor, conversion=conversion)
    assert settled.schedule is not None  # versioning keeps the conversion's schedule
    schedule = m.Schedule.objects.get(name=settled.schedule.schedule, version=settled.schedule.version)
    study = study_services.create_study(
        actor=actor,
        slug=slug,
        name=name,
        schedule=schedule,
        description=description,
        subject_ids=subject_ids,
        record_id_field=conversion.record_id_field or "record_id",
        administrator=administrator,
    )
    record_event(
        actor=actor,
        study=study,
        action="definitions.import",
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        after={**_audit_details(conversion), "schedule": schedule.ref, "created": result.created},
    )
    return study, result


@transaction.atomic
def update_study_definitions(*, actor, study: Study, conversion: Conversion) -> LoadResult:
    """Load new versions of a study's definitions and move the study to the new schedule version.

    Definitions that changed load as new versions beside the old ones; nothing in use changes. A study
    with enrolled subjects keeps its schedule: moving subjects and their records to a new schedule
    version is a protocol amendment, which Capture does not do yet.
    """
    if not access.can(require_actor(actor), "manage_study", study):
        raise PermissionDenied(f"Your role in {study.name} does not allow changing its definitions.")
    # A closed study takes no change; in production this versioning path is the one way in.
    study_services.require_writable(study, "change its definitions")
    if conversion.schedule is None:
        raise ValidationError(f"{conversion.source} defines no schedule. Fix: upload the whole project.")
    if conversion.schedule.schedule != study.schedule.name:
        raise ValidationError(
            f"the file converts to schedule {conversion.schedule.schedule!r}, but the study runs on "
            f"{study.schedule.name!r}. Fix: convert it with the project key {study.schedule.name!r}."
        )
    _require_clean(conversion)
    settled = versioned(conversion)
    _require_clean(settled)
    assert settled.schedule is not None  # versioning keeps the conversion's schedule
    new_ref = settled.schedule.ref
    if new_ref != study.schedule.ref and Subject.objects.filter(study=study).exists():
        raise ValidationError(
            f"{study.name} has enrolled subjects on schedule {study.schedule.ref}; moving them and their "
            f"records to {new_ref} is a protocol amendment, which Capture does not do yet. Nothing was "
            "changed. Fix: load the new forms for a new study, or wait for protocol amendments."
        )
    result = load_parsed(settled.parsed_set(), actor=actor, audit_details=_audit_details(conversion))
    if new_ref != study.schedule.ref:
        before = study.schedule.ref
        study.schedule = m.Schedule.objects.get(
            name=settled.schedule.schedule, version=settled.schedule.version
        )
        study.save(update_fields=["schedule"])
        record_event(
            actor=actor,
            study=study,
            action="study.schedule.change",
            object_type="study",
            object_id=study.pk,
            object_label=study.name,
            before={"schedule": before},
            after={"schedule": new_ref, **_audit_details(conversion), "created": result.created},
        )
    return result


# ---------------------------------------------------------------------------- reading a study back


def study_definitions(study: Study) -> tuple[list[FormFile], dict[str, DataElement], ScheduleFile]:
    """The study's forms (in schedule order), their elements and its schedule, as schema models."""
    schedule = ScheduleFile.model_validate(study.schedule.spec)
    refs: list[str] = []
    for arm in schedule.arms:
        for event in arm.events:
            for entry in event.forms:
                if entry.form not in refs:
                    refs.append(entry.form)
    rows = {
        f.ref: f for f in m.FormDefinition.objects.filter(event_forms__event__arm__schedule=study.schedule)
    }
    # Forms keep the order they were first loaded in (a dictionary's instrument order), not the order
    # events happen to name them in.
    first: dict[str, int] = {}
    for name, pk in m.FormDefinition.objects.filter(name__in={r.name for r in rows.values()}).values_list(
        "name", "pk"
    ):
        first[name] = min(pk, first.get(name, pk))
    refs.sort(key=lambda ref: first[rows[ref].name])
    forms = [FormFile.model_validate(rows[ref].spec) for ref in refs]
    elements = {
        e.ref: DataElement.model_validate(e.spec)
        for e in m.DataElement.objects.filter(forms__in=rows.values()).distinct()
    }
    return forms, elements, schedule


@transaction.atomic
def export_redcap_dictionary(*, actor, study: Study) -> tuple[str, dict[str, str], list[Problem]]:
    """(dictionary CSV, {arms, events, mapping} CSVs, problems) for a study; audited."""
    from .converters import redcap

    forms, elements, schedule = study_definitions(study)
    # A REDCap-made study writes its own record id field (e.g. study_id); others get record_id.
    record_id = study.record_id_field if forms and forms[0].instrument else ""
    text, problems = redcap.write_dictionary(forms, elements, record_id)
    schedule_files = redcap.write_schedule(schedule, {f.ref: f for f in forms})
    _audit_export(actor, study, "redcap", problems)
    return text, schedule_files, problems


@transaction.atomic
def export_odm(*, actor, study: Study) -> tuple[bytes, list[Problem]]:
    """CDISC ODM 1.3.2 metadata of a study, validated against the ODM schema; audited."""
    from .converters import odm

    forms, elements, schedule = study_definitions(study)
    data, problems = odm.write_odm(
        forms, elements, schedule, study_oid=f"Study.{study.slug}", study_name=study.name
    )
    _audit_export(actor, study, "odm", problems)
    return data, problems


def _audit_export(actor, study: Study, kind: str, problems: list[Problem]) -> None:
    if not access.can(require_actor(actor), access.VIEW, study):
        raise PermissionDenied(f"You have no role in {study.name}.")
    record_event(
        actor=actor,
        study=study,
        action="definitions.export",
        object_type="study",
        object_id=study.pk,
        object_label=study.name,
        after={"format": kind, "schedule": study.schedule.ref, "warnings": [str(p) for p in problems]},
    )


def summary(conversion: Conversion) -> str:
    """One line about a conversion, for messages and command output."""
    counts = {
        "elements": len(conversion.elements),
        "forms": len(conversion.forms),
        "errors": len(conversion.errors),
        "warnings": len(conversion.warnings),
    }
    return json.dumps(counts)
