"""The fast path of an import for one form: each distinct cell cleaned once, not once per row.

A form takes it when its columns each fill a field of their own (no checkbox or repeating-group
column, no field filled twice, no calculated field) and it has one version in the schedule. Each
column's `outcome(cell)` — the column's cleaning of the cell, then the form validator's cleaning of
that value: (clean value or SKIP, error or None) — depends on the cell alone, so it is remembered by
cell, and a new record is validated by `FormValidator.finish` without cleaning its fields again.
Other forms get no FastForm: their records are validated whole, as are records that already exist
(see `FastForm.values`). tests/imports/test_same_rules_as_entry.py holds both paths to one result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from capture.records.bulk import BLANK, FormValidator

from .mapping import CellError, ItemColumn
from .structure import StudyForms

MEMO_LIMIT = 50_000  # outcomes remembered per column (bounded memory for free-text columns)
SKIP = object()  # the cleaned value of a blank cell: it sets nothing
CELL_ERROR = object()  # the cleaned value of a cell its column cannot clean; the error says why


class FastColumn(NamedTuple):
    """One column of a FastForm. A tuple, so the row loop unpacks it at tuple speed."""

    position: int  # the column's index in the sheet (not `index`: tuples have an index method)
    remembered: Callable  # memo.get: the outcome remembered for a cell, or None
    memo: dict  # cell → outcome, shared by the columns that clean alike
    item: str
    column: ItemColumn
    outcome: Callable  # the outcome of a cell not remembered yet (and remembers it)


class FastForm:
    """The fast path for one form (see the module's docstring)."""

    def __init__(self, columns: list[FastColumn]):
        self.columns = columns

    @classmethod
    def of(
        cls,
        form_name: str,
        form_columns: list[ItemColumn],
        structure: StudyForms,
        validators: dict,
        missing,
        shared: dict[tuple, dict],
    ) -> FastForm | None:
        """The form's fast path, or None when the form must be validated whole."""
        versions = {
            ef.form.pk: ef.form for (_, name), ef in structure.event_forms.items() if name == form_name
        }
        if len(versions) != 1:
            return None
        form = next(iter(versions.values()))
        validator = validators.get(form.pk) or validators.setdefault(form.pk, FormValidator(form))
        names = [col.spec.item for col in form_columns]
        if len(set(names)) != len(names) or any(
            col.spec.code or col.group or col.multiple for col in form_columns
        ):
            return None
        columns = []
        for col in form_columns:
            validate = validator.cleaner(col.spec.item, missing_codes=missing)
            if validate is None:
                return None
            # Columns that clean alike (ten decimal columns, say) share what they remember.
            key = (col.cleaning_key(), validator.sharing_key(col.spec.item))
            memo = shared.setdefault(key, {})
            outcome = cls._outcome(col, validate, memo)
            columns.append(FastColumn(col.index, memo.get, memo, col.spec.item, col, outcome))
        return cls(columns)

    @staticmethod
    def _outcome(col: ItemColumn, validate, memo: dict):
        def outcome(raw):
            try:
                value = col.clean_uncached(raw)
            except CellError as exc:
                found = (CELL_ERROR, str(exc))
            else:
                if value is None:
                    found = (SKIP, None)
                else:
                    cleaned, error = validate(value)  # text or numbers (no checkbox): safe to share
                    found = (SKIP if cleaned is BLANK else cleaned, error)
            # False == 0 and True == 1 as keys: a bool must never meet a number's outcome, so
            # neither is remembered (a column of 0/1 numbers is rare outside checkbox columns).
            # A validation error names its field: it is not shared, so not remembered either.
            if (
                len(memo) < MEMO_LIMIT
                and (found[1] is None or found[0] is CELL_ERROR)
                and (raw.__class__ is str or not (raw == 0 or raw == 1))
            ):
                memo[raw] = found
            return found

        return outcome

    def clean(self, cells: list) -> tuple[dict, dict, list[tuple[int, object, str]]]:
        """(clean fields, the validator's errors by field, cell errors as (index, cell, reason)) of
        one row: each distinct cell's outcome is worked out once and remembered."""
        clean: dict = {}
        errors: dict = {}
        bad: list[tuple[int, object, str]] = []
        for index, remembered, _, name, _, outcome_of in self.columns:
            raw = cells[index]
            outcome = remembered(raw)
            if outcome is None:
                outcome = outcome_of(raw)
            cleaned, error = outcome
            if error is None:
                if cleaned is not SKIP:
                    clean[name] = cleaned
            elif cleaned is CELL_ERROR:
                bad.append((index, raw, f"{name}: {error}"))
            else:
                errors[name] = error
        return clean, errors, bad

    def values(self, cells: list) -> tuple[dict, set]:
        """The row's values and blank cells, as the general path reads them: for merging the row
        into a record that already exists."""
        values: dict = {}
        blanks: set = set()
        for column in self.columns:
            value = column.column.clean_uncached(cells[column.position])
            if value is None:
                blanks.add((None, 1, column.item))
            else:
                values[column.item] = value
        return values, blanks
