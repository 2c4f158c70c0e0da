"""A report's rows, made by the REDCap record export (capture/api/redcap/records.py): the same
columns, the same filterLogic evaluator, the same sites and the same disclosure policy — a report
is a flat record export limited to its fields, events and filter, then sorted."""

from __future__ import annotations

import re
from dataclasses import dataclass

from capture.api.redcap import records as export
from capture.api.redcap.params import RedcapError
from capture.api.redcap.project import Project
from capture.definitions import expressions
from capture.studies import access
from capture.studies.disclosure import Disclosure

from .models import Report

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class ReportError(ValueError):
    """A report that cannot run on its study as it is now (a field or event no longer there)."""


@dataclass
class ReportTable:
    names: list[str]  # REDCap column names, in order
    headers: list[str]  # the column headers to show (labels when asked)
    rows: list[dict]


def check_definition(
    project: Project, fields: list[str], events: list[str], filter_logic: str, sort_field: str
):
    """Every problem of a report's definition on `project`, as messages that say what to fix."""
    problems = []
    if not fields:
        problems.append("Choose at least one field.")
    unknown = [
        f
        for f in fields
        if f != project.record_id and f not in project.columns and f not in project.fields_by_name
    ]
    if unknown:
        problems.append(
            f"Not fields of this study: {', '.join(unknown)}. Use the names of the data dictionary."
        )
    bad_events = [e for e in events if e not in project.events_by_name]
    if bad_events:
        problems.append(
            f"Not events of this study: {', '.join(bad_events)}. Use unique event names such as "
            f"{next(iter(project.events_by_name), 'baseline_arm_1')}."
        )
    if filter_logic.strip():
        problems += _check_filter(project, filter_logic)
    if sort_field and sort_field != project.record_id and sort_field not in fields:
        problems.append(
            f"The sort field {sort_field!r} is not one of the report's fields: add it or pick another."
        )
    return problems


def _check_filter(project: Project, filter_logic: str) -> list[str]:
    try:
        used = expressions.fields_used(filter_logic)
        events_used = expressions.events_used(filter_logic)
    except expressions.ExpressionError as exc:
        return [f"The filter logic is not valid: {exc}"]
    except RecursionError:
        return ["The filter logic is not valid: it is nested too deeply."]
    known = {project.record_id, *project.fields_by_name, *project.columns, *export.SPECIAL}
    problems = []
    unknown = sorted(used - known)
    if unknown:
        problems.append(
            f"The filter logic reads fields this study does not have: {', '.join(unknown)}. "
            "Use the names of the data dictionary, in square brackets."
        )
    event_names = {*project.events_by_name, *(e.event.name for e in project.events)}
    bad_events = sorted(events_used - event_names)
    if bad_events:
        problems.append(f"The filter logic names events this study does not have: {', '.join(bad_events)}.")
    return problems


def report_table(
    user, report: Report, *, labels: bool = False, label_headers: bool = False, checkbox_label: bool = False
) -> ReportTable:
    """The report's rows as `user` may see them: their sites' subjects only, de-identified when
    their role lacks identifiers (the record export applies both), sorted by the report's sort field."""
    study = report.study
    project = Project(study)
    problems = check_definition(project, report.fields, report.events, report.filter_logic, report.sort_field)
    if problems:
        raise ReportError(" ".join(problems))
    policy = Disclosure.for_user(user, study)
    deidentified = not policy.identified
    try:
        columns = export.select_columns(project, report.fields, [], deidentified)
        keep = (
            export.row_filter(report.filter_logic, set(project.missing_codes))
            if report.filter_logic
            else None
        )
    except RedcapError as exc:
        raise ReportError(exc.message) from None
    subjects = access.subjects_visible_to(user, study).select_related("site").order_by("subject_id")
    names = export.head_columns(project) + [c.name for c in columns]
    rows = list(
        export.export_rows(
            project,
            list(subjects.only("pk", "subject_id", "arm_id", "date_shift_days", "site__code")),
            columns,
            events=list(report.events),
            keep=keep,
            deidentified=deidentified,
            options=export.ExportOptions(labels=labels, checkbox_label=checkbox_label, with_dag=False),
        )
    )
    if report.sort_field and report.sort_field in names:
        # A stable sort: rows of equal value keep the export's order (record, event, instance).
        rows.sort(key=lambda row: _sort_key(row.get(report.sort_field, "")), reverse=report.sort_descending)
    headers = [export.header_label(project, n) for n in names] if label_headers else list(names)
    return ReportTable(names, headers, rows)


def _sort_key(value) -> tuple:
    """Numbers by value before text; blanks last (ascending), as REDCap sorts a report."""
    text = "" if value is None else str(value)
    if text == "":
        return (2, 0.0, "")
    if _NUMBER.match(text):
        return (0, float(text), "")
    return (1, 0.0, text.casefold())
