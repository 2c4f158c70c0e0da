"""A REDCap project into a new Capture study, from the files REDCap exports (docs/migration.md).

`migrate()` takes any set of: the data dictionary, arms, events, instrument-event mapping, DAGs,
repeating instruments and events (the API's repeatingFormsEvents), a flat records CSV (raw, as the
API or the Data Export tool writes it), or a project XML with or without its ClinicalData. Each file
is recognised by its header (`recognise`). It creates the study (ids kept as REDCap's record ids,
its REDCap names kept: capture/api/redcap/project.py), makes the acting user its administrator, a
site per DAG, and imports every record through the REDCap API's importer
(capture/api/redcap/record_import.py), so that the study answers the REDCap API as the project
did. All or nothing, in one transaction: a dry run, or any problem, writes nothing; the report names
every bad cell (row, column, value, why) and every column read but not imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from capture.api.redcap import record_import
from capture.api.redcap.project import Project, dag_key, dag_name
from capture.api.redcap.record_import import CellProblem, Importer
from capture.definitions import services as definitions
from capture.definitions.converters import Conversion, xmlsafe
from capture.definitions.converters.odm.common import REDCAP_NS, _findall
from capture.definitions.converters.redcap import project_key
from capture.definitions.loader import DefinitionError
from capture.definitions.schema import ScheduleFile
from capture.records.bulk import collector_paused
from capture.records.models import FormRecord
from capture.studies import services as study_services
from capture.studies.models import Site, Study

REASON = "REDCap project migration"
DEFAULT_SITE = ("MAIN", "Main site")  # the site of records without a DAG, when the project has none
_ODM = "{http://www.cdisc.org/ns/odm/v1.3}"
_RC = f"{{{REDCAP_NS}}}"

# The headers that tell REDCap's metadata files apart (the API's column names, lower case).
_DICTIONARY = {"field_name", "form_name", "field_type"}
_DICTIONARY_UI = {"variable / field name", "form name", "field type"}
_SIGNATURES = [
    ("mapping", {"arm_num", "unique_event_name", "form"}),
    ("events", {"event_name", "arm_num"}),
    ("dags", {"data_access_group_name", "unique_group_name"}),
    ("repeating", {"form_name", "custom_form_label"}),
    ("arms", {"arm_num", "name"}),
]
KIND_TITLES = {
    "dictionary": "data dictionary",
    "arms": "arms",
    "events": "events",
    "mapping": "instrument-event mapping",
    "dags": "data access groups",
    "repeating": "repeating instruments and events",
    "records": "records (flat CSV)",
    "xml": "project XML",
}


@dataclass
class Report:
    """What a migration did, or would do: notes, file-level errors, and every bad cell."""

    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problems: list[CellProblem] = field(default_factory=list)
    warnings: list[CellProblem] = field(default_factory=list)  # cells kept, with a warning
    subjects: int = 0
    records: int = 0
    study: Study | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.problems

    def lines(self) -> list[str]:
        out = [f"note: {n}" for n in self.notes] + [f"error: {e}" for e in self.errors]
        for p in self.problems:
            where = f"row {p.row}" if p.row else "record"
            out.append(
                f"error: {where}, record {p.record!r}, column {p.column!r}, value {p.value!r}: {p.message}"
            )
        for w in self.warnings:
            out.append(
                f"warning: row {w.row}, record {w.record!r}, column {w.column!r}, value {w.value!r}: {w.message}"
            )
        verb = "would create" if self.dry_run or not self.ok else "created"
        out.append(f"{verb} {self.subjects} subjects and {self.records} records")
        if not self.ok:
            out.append("nothing was written: fix the problems above and run it again")
        elif self.dry_run:
            out.append("dry run: nothing was written")
        return out


class _RollbackError(Exception):
    """Raised inside the migration's transaction to undo it (a dry run, or problems)."""


# ----------------------------------------------------------------------------- recognising files


def recognise(data: bytes) -> str | None:
    """The kind of a REDCap export file (see KIND_TITLES), from its first bytes; None if unknown."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<?xml", b"<ODM")):
        return "xml"
    header = _header(data)
    if not header:
        return None
    names = {h.strip().lower() for h in header}
    if names >= _DICTIONARY or names >= _DICTIONARY_UI:
        return "dictionary"
    for kind, signature in _SIGNATURES:
        if signature <= names and (kind != "arms" or len(names) == 2):
            return kind
    return "records"


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _header(data: bytes) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(_text(data[:65536]), newline="")), [])
    except csv.Error:
        return []


def _csv_rows(data: bytes) -> list[dict]:
    """csv.DictReader's rows (blank lines skipped; a short row's missing columns None, a long
    row's extra values a list under the key None), built without its Python step per row: a
    project's records CSV has hundreds of thousands of rows."""
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    header = next(reader, None)
    if header is None:
        return []
    width = len(header)
    rows = []
    for values in reader:
        if len(values) == width and values:
            rows.append(dict(zip(header, values, strict=True)))
        elif values:
            row: dict = dict(zip(header, values, strict=False))
            if len(values) > width:
                row[None] = values[width:]  # DictReader's restkey
            else:
                row.update(dict.fromkeys(header[len(values) :]))  # DictReader's restval
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- the project XML


def _xml_parts(data: bytes) -> tuple[list[dict], set[tuple[str, str]], int]:
    """(flat records rows of its ClinicalData, repeating (event, instrument) pairs, file values skipped)."""
    root = xmlsafe.parse(data)
    repeating: set[tuple[str, str]] = set()
    for node in root.iter(f"{_RC}RepeatingInstrument"):
        repeating.add((node.get(f"{_RC}UniqueEventName", ""), node.get(f"{_RC}RepeatInstrument", "")))
    for node in root.iter(f"{_RC}RepeatingEvent"):  # the whole event repeats: no instrument
        repeating.add((node.get(f"{_RC}UniqueEventName", ""), ""))
    whole = {event for event, instrument in repeating if not instrument}
    rows: dict[tuple, dict] = {}
    files = 0
    for subject in root.iter(f"{_ODM}SubjectData"):
        rid = subject.get("SubjectKey", "")
        record_field = subject.get(f"{_RC}RecordIdField", "")
        dag = subject.get(f"{_RC}DataAccessGroup", "")
        for event in _findall(subject, "StudyEventData"):
            unique = event.get(f"{_RC}UniqueEventName") or event.get("StudyEventOID", "").removeprefix(
                "Event."
            )
            for form in _findall(event, "FormData"):
                instrument = form.get("FormOID", "").removeprefix("Form.")
                repeats = (unique, instrument) in repeating or ("", instrument) in repeating
                instance = form.get("FormRepeatKey", "1") if repeats else ""
                key = (rid, unique, instrument if repeats else "", instance)
                if unique in whole:  # a row per instance of the event, all its forms on it
                    key = (rid, unique, "", event.get("StudyEventRepeatKey", "1"))
                row = rows.setdefault(
                    key,
                    {
                        record_field or "record_id": rid,
                        record_import.EVENT_COL: unique,
                        record_import.INSTRUMENT_COL: key[2],
                        record_import.INSTANCE_COL: key[3],
                        **({record_import.DAG_COL: dag} if dag else {}),
                    },
                )
                for item in form.iter(f"{_ODM}ItemData", f"{_ODM}ItemDataBase64Binary"):
                    if item.tag.endswith("Base64Binary"):
                        files += 1
                    elif item.get("ItemOID") != record_field:
                        row[item.get("ItemOID", "")] = item.get("Value", "")
    return list(rows.values()), repeating, files


# ----------------------------------------------------------------------------- the migration


@dataclass
class _Files:
    """The given files by kind (one of each), their names, and what was read from them."""

    data: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    repeating: set[tuple[str, str]] = field(default_factory=set)


def _sort(files: Iterable[tuple[str, bytes]], report: Report) -> _Files:
    sorted_files = _Files()
    for name, data in files:
        kind = recognise(data)
        if kind is None:
            report.errors.append(f"{name}: not a file REDCap exports (empty, or not CSV or XML).")
            continue
        if kind in sorted_files.data:
            report.errors.append(
                f"{name} and {sorted_files.names[kind]} are both {KIND_TITLES[kind]} files; give one of each."
            )
            continue
        sorted_files.data[kind], sorted_files.names[kind] = data, name
        report.notes.append(f"{name}: {KIND_TITLES[kind]}")
    if "xml" not in sorted_files.data and "dictionary" not in sorted_files.data:
        report.errors.append(
            "Give the project's data dictionary (CSV) or its project XML: it defines the study."
        )
    return sorted_files


def _read_data(files: _Files, report: Report) -> None:
    """The records rows (the CSV's, else the XML's ClinicalData) and the repeating pairs."""
    xml_rows: list[dict] = []
    if "xml" in files.data:
        try:
            xml_rows, files.repeating, skipped = _xml_parts(files.data["xml"])
        except ValueError as exc:
            report.errors.append(f"{files.names['xml']}: {exc}")
            return
        if skipped:
            report.notes.append(
                f"{skipped} uploaded files in the XML were not imported (file contents are not kept)."
            )
    if "records" in files.data:
        files.rows = _csv_rows(files.data["records"])
        if xml_rows:
            report.notes.append("the records come from the CSV; the project XML's ClinicalData was not used.")
    else:
        files.rows = xml_rows
    if "repeating" in files.data:
        files.repeating = {
            (r.get("event_name", "").strip(), r.get("form_name", "").strip())
            for r in _csv_rows(files.data["repeating"])
        }
    elif not files.repeating and files.rows:
        files.repeating = _inferred_repeating(files.rows, report)


def _inferred_repeating(rows: list[dict], report: Report) -> set[tuple[str, str]]:
    """What repeats, as the records say when no file does: the instrument a row names in
    redcap_repeat_instrument, at its event; a whole event where a row has an instance and no
    instrument."""
    inferred = set()
    for r in rows:
        instrument = r.get(record_import.INSTRUMENT_COL, "").strip()
        if instrument or r.get(record_import.INSTANCE_COL, "").strip():
            inferred.add((r.get(record_import.EVENT_COL, "").strip(), instrument))
    names = sorted({i for _, i in inferred if i})
    if names:
        report.notes.append(
            f"no repeating instruments file was given: {', '.join(names)} repeat(s), as the records' "
            "redcap_repeat_instrument column says."
        )
    events = sorted({e for e, i in inferred if not i})
    if events:
        report.notes.append(
            f"no repeating instruments file was given: event(s) {', '.join(events)} repeat as a whole, as the "
            "records' redcap_repeat_instance column says."
        )
    return inferred


def _convert(files: _Files, slug: str, name: str, report: Report) -> Conversion | None:
    project = project_key(slug)
    if "xml" in files.data:
        if "dictionary" in files.data:
            report.notes.append(
                "the definitions come from the project XML; the data dictionary was not used."
            )
        conversion = definitions.convert(
            "odm", files.data["xml"], source=files.names["xml"], project=project, title=name
        )
    else:
        conversion = definitions.convert(
            "redcap",
            files.data["dictionary"],
            source=files.names["dictionary"],
            project=project,
            title=name,
            arms=files.data.get("arms"),
            events=files.data.get("events"),
            mapping=files.data.get("mapping"),
        )
    for problem in conversion.problems:
        (report.errors if problem.severity == "error" else report.notes).append(
            f"{conversion.source}: {problem}"
        )
    if conversion.errors or conversion.schedule is None:
        return None
    conversion.schedule = _with_repeating(conversion, files.repeating)
    return conversion


def _with_repeating(conversion: Conversion, pairs: set[tuple[str, str]]) -> ScheduleFile:
    """The schedule with REDCap's repeating instruments marked, per event (`""`: every event)."""
    instrument_of = {form.ref: form.instrument or form.form for form in conversion.forms}
    assert conversion.schedule is not None  # a converted project always has its schedule
    spec = conversion.schedule.model_dump(mode="json")
    for arm in spec["arms"]:
        suffix = arm["name"].removeprefix("arm_")
        for event in arm["events"]:
            unique = f"{event['name']}_arm_{suffix}"
            event["repeats"] = (unique, "") in pairs  # REDCap's repeating event: its forms repeat together
            for entry in event["forms"]:
                instrument = instrument_of.get(entry["form"], "")
                if event["repeats"] or (unique, instrument) in pairs or ("", instrument) in pairs:
                    entry["repeating"] = True
    return ScheduleFile.model_validate(spec)


def _site_code(unique_name: str, taken: set[str]) -> str:
    code = re.sub(r"[^A-Za-z0-9]", "", unique_name).upper()[:14] or "DAG"
    base, n = code, 1
    while code in taken:
        n += 1
        code = f"{base}{n}"
    taken.add(code)
    return code


def _make_sites(user, study: Study, files: _Files, report: Report) -> Site | None:
    """A site per DAG (from the DAG file, else the DAGs the records name, matched as REDCap matches
    them: `Site_A` is `site_a`); the default site when there are none, or when some records have no
    DAG. A DAG whose unique name will not come back as given (a name REDCap did not make of the
    group's name, or one too long for a site code) is named in the report."""
    dags: dict[str, tuple[str, str]] = {}  # dag_key -> (unique name, group name)
    if "dags" in files.data:
        for row in _csv_rows(files.data["dags"]):
            unique = row.get("unique_group_name", "").strip()
            dags[dag_key(unique)] = (unique, row.get("data_access_group_name", "").strip())
    for row in files.rows:
        dag = row.get(record_import.DAG_COL, "").strip()
        if dag:
            dags.setdefault(dag_key(dag), (dag, dag))
    taken: set[str] = set()
    for unique, title in dags.values():
        if unique:
            site = study_services.add_site(
                actor=user, study=study, code=_site_code(unique, taken), name=title or unique
            )
            if dag_name(site) != unique:
                report.notes.append(
                    f"data access group {unique!r} is site {site.code} ({site.name}); REDCap surfaces will "
                    f"name it {dag_name(site)!r}."
                )
    if dags and all(row.get(record_import.DAG_COL, "").strip() for row in files.rows):
        return None
    return study_services.add_site(
        actor=user, study=study, code=_site_code(DEFAULT_SITE[0], taken), name=DEFAULT_SITE[1]
    )


def _prepare_rows(
    project: Project, rows: list[dict], value_map: dict[str, dict[str, str]], report: Report
) -> set[str] | None:
    """Ready the rows for the importer: values mapped (in place), file-upload cells set aside,
    columns the project does not have reported once. Returns the columns the importer leaves out
    (so that each row does not repeat what the report says once); None if no row can be read."""
    if not rows:
        return set()
    # The XML's rows differ in their keys; a CSV's share one header (read once, not once a row).
    header = list(dict.fromkeys(key for keys in dict.fromkeys(tuple(row) for row in rows) for key in keys))
    if header[0] != project.record_id:
        report.errors.append(
            f"the records' first column is {header[0]!r}, but the project's record id field is "
            f"{project.record_id!r}. Fix: export the records of this project, record id first."
        )
        return None
    keep, files = _columns(project, header, report)
    for name, mapping in value_map.items():
        mapped = [k for k in keep if k == name or k.rpartition("___")[0] == name]
        for row in rows:
            for key in mapped:
                if key in row:
                    row[key] = _mapped(row[key], mapping)
    for name in files:
        given = sum(1 for row in rows if (row.get(name) or "").strip())
        if given:
            report.notes.append(
                f"file-upload field {name!r}: {given} values not imported (file contents are not kept)."
            )
    return {name for name in header if name not in keep}


def _columns(project: Project, header: list[str], report: Report) -> tuple[set[str], list[str]]:
    """(columns to import, file-upload columns) of a records header; the rest is reported."""
    special = {project.record_id} | record_import.ROW_KEYS
    keep, files, unknown, ignored = set(), [], [], []
    for name in header:
        base = name.rpartition("___")[0] or name
        column = project.columns.get(name) or project.columns.get(
            f"{base}___{name.rpartition('___')[2].lower()}"
        )
        if name in special and name != record_import.SURVEY_COL:
            keep.add(name)
        elif column is not None and column.field is not None and column.field.datatype == "file":
            files.append(name)
        elif column is not None:
            keep.add(name)
        elif name == record_import.SURVEY_COL or (
            name.endswith("_timestamp") and name.removesuffix("_timestamp") in project.instruments
        ):
            ignored.append(name)
        else:
            unknown.append(name)
    if ignored:
        report.notes.append(f"not imported (survey metadata, not data): {', '.join(ignored)}")
    for name in unknown:
        report.errors.append(
            f"column {name!r} is not a field of the project (nor a REDCap column). Fix: remove it."
        )
    return keep, files


def _mapped(value: str, mapping: dict[str, str]) -> str:
    if value in mapping:
        return mapping[value]
    folded = value.casefold()
    return next((code for legacy, code in mapping.items() if legacy.casefold() == folded), value)


@collector_paused()  # a project's rows and records are many long-lived objects: records/bulk.py
def migrate(
    *,
    user,
    slug: str,
    name: str = "",
    files: Iterable[tuple[str, bytes]],
    dry_run: bool = False,
    value_map: dict[str, dict[str, str]] | None = None,
) -> Report:
    """Create study `slug` from a REDCap project's files, all or nothing; see the module docstring."""
    report = Report(dry_run=dry_run)
    sorted_files = _sort(files, report)
    if report.errors:
        return report
    _read_data(sorted_files, report)
    conversion = _convert(sorted_files, slug, name or slug, report) if not report.errors else None
    if conversion is None:
        return report
    try:
        with transaction.atomic():
            _create(user, slug, name or slug, conversion, sorted_files, value_map or {}, report)
            if dry_run or not report.ok:
                raise _RollbackError
    except _RollbackError:
        report.study = None
    except (ValidationError, PermissionDenied, DefinitionError) as exc:
        report.errors.append(" ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        report.study = None
    return report


def _create(user, slug, name, conversion, files: _Files, value_map, report: Report) -> None:
    study, _ = definitions.create_study_from_conversion(
        actor=user, conversion=conversion, slug=slug, name=name, subject_ids=Study.SOURCE_IDS
    )
    study_services.grant_role(actor=user, study=study, user=user, role="study_admin")
    default_site = _make_sites(user, study, files, report)
    project = Project(study)
    left_out = _prepare_rows(project, files.rows, value_map, report)
    importer = Importer(
        user, study, project, default_site=default_site, reason=REASON, left_out=left_out or ()
    )
    importer.run(files.rows if left_out is not None else [])
    report.problems.extend(importer.problems)
    report.warnings.extend(importer.warnings)
    for column, count in importer.trimmed.items():
        report.notes.append(
            f"column {column!r}: the spaces around {count} values were trimmed (not free text)."
        )
    if importer.not_imported:
        report.notes.append(f"not imported (survey metadata, not data): {', '.join(importer.not_imported)}")
    report.subjects = len(importer.created)
    report.records = FormRecord.objects.filter(subject__study=study).count()
    report.study = study
