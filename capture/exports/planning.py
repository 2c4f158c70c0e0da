"""Table planning: the columns of an export, named and described once for every format.

`ColumnPlanner` makes the subject, context, status and item columns of a table (names unique
within the table through a `NameBook`, datatypes and notes after the export's date mode and
checkbox mode); `max_counts` finds how many instances and group rows the wide and long
layouts must make room for.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Max

from capture.files.exports import note as file_note
from capture.records.models import FormRecord

from .columns import BOOLEAN_CODES, OPTION_CODES, STATUS_CODES, Column, Item, NameBook
from .deidentify import Deidentifier
from .selection import Selection
from .spec import ExportSpec

KIND_CODES = (("patient", "Patient", ""), ("animal", "Animal model", ""))


class ColumnPlanner:
    """Columns for one export's selection, spec and de-identification."""

    def __init__(self, selection: Selection, spec: ExportSpec, deid: Deidentifier) -> None:
        self.selection = selection
        self.spec = spec
        self.deid = deid
        counts: dict[str, int] = defaultdict(int)
        for items in selection.forms.values():
            for name in {i.name for i in items}:
                counts[name] += 1
        self._name_forms = counts  # item name -> how many selected forms have it

    def subject_columns(self, names: NameBook, *, full: bool = True) -> list[Column]:
        cols = [
            Column(
                names.take("subject_id"),
                "Subject id",
                "text",
                "subject",
                key="subject_id",
                note="re-hashed for this export" if self.deid.rehash_key else "",
            ),
            Column(names.take("site"), "Site", "text", "subject", key="site"),
        ]
        if not full:
            return cols
        cols += [
            Column(
                names.take("subject_kind"), "Subject kind", "code", "subject", key="kind", codes=KIND_CODES
            ),
            Column(names.take("arm"), "Arm", "text", "subject", key="arm"),
            Column(names.take("derived_from"), "Derived from subject", "text", "subject", key="derived_from"),
            Column(names.take("model_type"), "Model type", "text", "subject", key="model_type"),
        ]
        if self.deid.date_mode != "offset":
            cols.append(
                Column(
                    names.take("enrollment_date"),
                    "Enrolment date",
                    "date",
                    "subject",
                    key="enrollment_date",
                    note=self.date_note(),
                )
            )
        return cols

    def date_note(self) -> str:
        return {
            "shift": "shifted by the subject's date shift",
            "offset": "days since enrolment",
            "none": "real date (identified export)",
        }[self.deid.date_mode]

    def item_columns(
        self,
        item: Item,
        names: NameBook,
        *,
        suffix: str,
        label_suffix: str,
        event=None,
        instance=None,
        rows: int = 1,
    ) -> list[Column]:
        """An item's column(s). rows=0: a per-row table of a repeating group (no row suffix)."""
        prefix = f"{item.form}_" if self._ambiguous(item) else ""
        row_numbers = range(1, max(rows, 1) + 1) if item.repeating and rows else [None]
        element = item.element
        cols = []
        for row in row_numbers:
            rtext = f"_r{row}" if row else ""
            rlabel = f" (row {row})" if row else ""
            base = {
                "item": item,
                "form": item.form,
                "event": event.name if event else None,
                "event_id": event.pk if event else None,
                "instance": instance,
                "row": row,
                "source": "record",
            }
            if item.checkbox and self.spec.checkboxes == "split":
                for code, meaning, _concept in element.codes:
                    cols.append(
                        Column(
                            names.take(f"{prefix}{item.name}___{code}{rtext}{suffix}"),
                            f"{item.label}: {meaning}{rlabel}{label_suffix}",
                            "option",
                            option=code,
                            codes=OPTION_CODES,
                            **base,
                        )
                    )
                continue
            datatype, codes, note = self.datatype(item)
            cols.append(
                Column(
                    names.take(f"{prefix}{item.name}{rtext}{suffix}"),
                    f"{item.label}{rlabel}{label_suffix}",
                    datatype,
                    codes=codes,
                    note=note,
                    **base,
                )
            )
        return cols

    def datatype(self, item: Item) -> tuple[str, tuple, str]:
        element = item.element
        if item.checkbox:
            return "multi", element.codes, "chosen codes joined with |"
        if element.codes:
            return "code", element.codes, ""
        if element.datatype == "boolean":
            return "boolean", BOOLEAN_CODES, ""
        if element.datatype in ("date", "datetime"):
            if self.deid.date_mode == "offset":
                return "days", (), f"{element.datatype} as days since enrolment"
            return element.datatype, (), self.date_note()
        if element.datatype in ("integer", "decimal", "time"):
            return element.datatype, (), ""
        if element.datatype == "file":
            return "text", (), file_note(self.deid.identified, self.spec.include_files)
        return "text", (), ""

    def _ambiguous(self, item: Item) -> bool:
        return self._name_forms[item.name] > 1

    def status_column(
        self, names: NameBook, form: str, *, suffix="", label_suffix="", event=None, instance=None
    ) -> Column:
        return Column(
            names.take(f"{form}_status{suffix}"),
            f"{form} record status{label_suffix}",
            "status",
            "status",
            form=form,
            event=event.name if event else None,
            event_id=event.pk if event else None,
            instance=instance,
            codes=STATUS_CODES,
        )

    def context_columns(self, names: NameBook) -> list[Column]:
        event_codes = tuple((e.name, e.title, "") for e in self.selection.events)
        return [
            Column(names.take("event"), "Event", "code", "context", key="event", codes=event_codes),
            Column(
                names.take("event_day"), "Scheduled day of the event", "integer", "context", key="event_day"
            ),
            Column(names.take("instance"), "Instance", "integer", "context", key="instance"),
        ]


def max_counts(subjects, sel: Selection) -> tuple[dict, dict]:
    """Max instance per (event, form) of repeating event forms, max rows per (event, form, group)."""
    repeating = [ef for efs in sel.event_forms.values() for ef in efs if ef.repeating]
    instances: dict[tuple[int, str], int] = {}
    if repeating:
        for row in (
            FormRecord.objects.filter(
                subject__in=subjects,
                event_id__in=[ef.event_id for ef in repeating],
                form_name__in=[ef.form.name for ef in repeating],
            )
            .values("event_id", "form_name")
            .annotate(top=Max("instance"))
        ):
            instances[(row["event_id"], row["form_name"])] = row["top"]
    grouped_forms = {
        name: {i.group for i in items if i.repeating}
        for name, items in sel.forms.items()
        if any(i.repeating for i in items)
    }
    rows: dict[tuple[int, str, str], int] = defaultdict(int)
    if grouped_forms:
        for event_id, form_name, data in (
            FormRecord.objects.filter(
                subject__in=subjects,
                event_id__in=[e.pk for e in sel.events],
                form_name__in=list(grouped_forms),
            )
            .values_list("event_id", "form_name", "data")
            .iterator(chunk_size=2000)
        ):
            for group in grouped_forms[form_name]:
                count = len(data.get(group) or [])
                key = (event_id, form_name, group)
                rows[key] = max(rows[key], count)  # type: ignore[index]  # grouped forms name their group
    return instances, rows
