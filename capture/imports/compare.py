"""Compare a plan's rows with the stored records: validate each record as it would be written and
say whether it is new, changed or unchanged.

The record rules are the record service's, not the import's: each record is validated by the form's
`FormValidator` (clean_record, with the subject's other events, as on entry), the row's values are
merged into the stored ones by `records.services.merge_values`, and "unchanged" is
`records.services.is_unchanged` — the one diff of entry, import and the APIs (issue 18).
An unchanged record is neither written nor audited; a locked record or subject refuses a change.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from capture.records.bulk import FormValidator, RecordWrite, locked_subject_ids
from capture.records.models import FormRecord, Status
from capture.records.services import SubjectEvents, is_unchanged, merge_values
from capture.studies.models import Study

from .mapping import Mapping
from .report import MAX_CHANGES_SHOWN, Plan, Problem, cell_text
from .rows import RowPlan


def compare(
    plan: Plan,
    rows: list[RowPlan],
    study: Study,
    mapping: Mapping,
    missing_codes,
    headers: list[str],
    validators: dict[int, FormValidator],
) -> None:
    """Validate each row's record and add it to the plan: its problems, or a write (new or changed),
    or a count of unchanged."""
    comparer = _Comparer(plan, rows, study, mapping, missing_codes, headers, validators)
    for row in rows:
        comparer.add(row)


def _stored(study: Study, rows: list[RowPlan]) -> dict[tuple, FormRecord]:
    """The stored records of the forms the rows fill, by (subject, event, form, instance)."""
    if not rows:
        return {}
    forms = {p.form_name for p in rows}
    return {
        (r.subject_id, r.event_id, r.form_name, r.instance): r
        for r in FormRecord.objects.filter(subject__study=study, form_name__in=forms).select_related("form")
    }


class _Comparer:
    def __init__(self, plan, rows, study, mapping, missing_codes, headers, validators):
        self.plan = plan
        self.rows = rows
        self.mapping = mapping
        self.missing_codes = missing_codes
        self.headers = headers
        self.validators = validators
        self.existing = _stored(study, rows)
        self.locked_subjects = locked_subject_ids(study) if rows else set()
        self.subject_events: SubjectEvents | None = None  # read on the first form that needs it

    def add(self, p: RowPlan) -> None:
        record = (
            self.existing.get((p.subject.pk, p.event.pk, p.form_name, p.instance)) if self.existing else None
        )
        form = record.form if record is not None else p.event_form.form
        validator = self.validators.get(form.pk) or self.validators.setdefault(form.pk, FormValidator(form))
        if p.status is not None:
            status = p.status
        else:
            status = record.status if record is not None else self.mapping.status
        clean, errors = self._validate(p, record, validator, status)
        if errors:
            self._report_errors(p, errors)
            return
        if p.calculated:
            self._check_calculated(p, clean)
        kind = self._kind(p, record, clean, status)
        if kind is None or kind == "unchanged":
            return  # refused (the problem says why), or nothing to write and nothing to audit
        if len(self.plan.details) < MAX_CHANGES_SHOWN:
            self.plan.details.append({"row": p.row, "record": p.label, "kind": kind})
        self.plan.writes.append(
            RecordWrite(
                subject=p.subject,
                event=p.event,
                form=form,
                form_name=p.form_name,
                instance=p.instance,
                data=clean,
                status=status,
                existing_id=record.pk if record is not None else None,
                existing_version=record.version if record is not None else None,
            )
        )

    def _other_events(self, p: RowPlan, record, validator: FormValidator):
        """The subject's other stored events, for expressions such as [baseline][weight] (as on
        entry); one query reads them for every subject of the sheet."""
        if not validator.compiled.events_read:
            return None
        if self.subject_events is None:
            self.subject_events = SubjectEvents({q.subject.pk for q in self.rows})
        return self.subject_events.of(p.subject.pk, exclude=record)

    def _validate(self, p: RowPlan, record, validator: FormValidator, status: int) -> tuple[dict, dict]:
        complete = status == Status.COMPLETE
        events = self._other_events(p, record, validator)
        if p.fast is not None and record is None:
            # A new record whose fields were cleaned as the cells were read (the fast path).
            return validator.finish(
                p.values,
                p.clean if p.clean is not None else {},
                p.errors or {},
                missing_codes=self.missing_codes,
                complete=complete,
                events=events,
            )
        if p.fast is not None:
            p.values, p.blanks = p.fast.values(p.cells)
        stored = record.data if record is not None else {}
        merged = merge_values(
            stored, p.values, groups=validator.groups, blanks=p.blanks, overwrite=self.mapping.overwrite
        )
        return validator.clean(merged, missing_codes=self.missing_codes, complete=complete, events=events)

    def _report_errors(self, p: RowPlan, errors: dict) -> None:
        sheet = self.plan.sheet
        for where, reason in errors.items():
            col = p.columns.get(where)
            if col is None:
                self.plan.problems.append(Problem(p.row, "", "", "", f"{p.label}: {reason}", sheet))
            else:
                value = cell_text(p.cells[col.index])
                self.plan.problems.append(
                    Problem(p.row, col.letter, self.headers[col.index], value, reason, sheet)
                )

    def _check_calculated(self, p: RowPlan, clean: dict) -> None:
        """A warning for each cell of a calculated item that differs from the value Capture
        calculates (the cell is not imported)."""
        for col, value in p.calculated or ():
            computed = clean.get(col.spec.item)
            if computed in (None, ""):
                reason = (
                    f"Value ignored: {col.spec.item} is calculated by Capture, which cannot calculate it "
                    "from this row (an item it needs is blank)."
                )
            elif _same(value, computed):
                continue
            else:
                reason = (
                    f"Value ignored: {col.spec.item} is calculated by Capture as {cell_text(computed)!r}, "
                    "which differs from the sheet's value."
                )
            self.plan.problems.append(
                Problem(
                    p.row,
                    col.letter,
                    self.headers[col.index],
                    cell_text(p.cells[col.index]),
                    reason,
                    self.plan.sheet,
                    "warning",
                )
            )

    def _kind(self, p: RowPlan, record, clean: dict, status: int) -> str | None:
        """ "new", "changed" or "unchanged" (counted in the plan); None when a lock refuses the row."""
        unchanged = is_unchanged(record, clean, status)
        if p.subject.pk in self.locked_subjects and not unchanged:
            self._refuse(
                p,
                f"{p.subject.subject_id} is locked; a data manager must unlock the subject before its data "
                "can change (or remove this row).",
            )
            return None
        if record is None:
            self.plan.new += 1
            return "new"
        if unchanged:
            self.plan.unchanged += 1
            return "unchanged"
        if record.locked:
            self._refuse(
                p,
                f"{p.label} is locked; a data manager must unlock it before the import can change it "
                "(or remove this row).",
            )
            return None
        self.plan.changed += 1
        return "changed"

    def _refuse(self, p: RowPlan, reason: str) -> None:
        self.plan.problems.append(Problem(p.row, "", "", "", reason, self.plan.sheet))


def _same(value, computed) -> bool:
    """The sheet's cleaned value and the calculated one say the same (54 and 54.0 alike)."""
    try:
        return Decimal(str(value)) == Decimal(str(computed))
    except (InvalidOperation, ValueError):
        return str(value).strip() == str(computed).strip()
