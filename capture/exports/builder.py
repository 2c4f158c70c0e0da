"""The dataset builder: which subjects, which columns, and the rows, streamed in chunks.

`DatasetBuilder(study=, user=, spec=)` resolves the selection against the study's schedule
and what the user may see (capture.studies.access), applies the de-identification rules, and
exposes the export as tables. A table's `batches()` reads subjects in chunks (keyset
pagination) with their form records, so memory holds one chunk at a time whatever the size of
the study. Writers consume batches; nothing here knows about file formats.

De-identification (decided here, once, for every format):
- identifier-flagged items are left out unless the export is identified;
- dates are shifted by the subject's `date_shift_days`, or replaced by days since enrolment,
  or (identified only) kept;
- subject ids may be replaced by an HMAC with a key made for this export and then forgotten,
  so two exports cannot be linked by id;
- free-text items (text without permissible values) are left out on request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection

from capture.definitions.models import DataElement, EventForm
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies.models import Study, Subject

from . import cohort as cohort_filter
from . import imaging
from .columns import (
    BOOLEAN_CODES,
    OPTION_CODES,
    STATUS_CODES,
    Column,
    ElementInfo,
    Item,
    Missing,
    NameBook,
    safe_name,
)
from .spec import ExportSpec

CHUNK_SIZE = 500
KIND_CODES = (("patient", "Patient", ""), ("animal", "Animal model", ""))


@dataclass
class Deidentifier:
    identified: bool
    date_mode: str
    rehash_key: bytes | None

    def subject_key(self, subject_id: str | None) -> str | None:
        if subject_id is None or self.rehash_key is None:
            return subject_id
        return hmac.new(self.rehash_key, subject_id.encode(), hashlib.sha256).hexdigest()[:16]

    def date(self, value: dt.date, subject: Subject):
        """A date as the export shows it: shifted, as days since enrolment, or real."""
        if self.date_mode == "offset":
            day = value.date() if isinstance(value, dt.datetime) else value
            return (day - subject.enrollment_date).days
        if self.date_mode == "shift":
            return value + dt.timedelta(days=subject.date_shift_days)
        return value


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    batches: Callable[[], Iterator[list[list]]]
    rows_written: int = 0


@dataclass
class Dropped:
    item: str
    reason: str


@dataclass
class Selection:
    events: list  # Event rows, schedule order
    event_forms: dict[int, list[EventForm]]  # event id -> selected event forms
    forms: dict[str, list[Item]]  # form name -> selected items
    form_refs: dict[str, str]  # form name -> name@version exported
    dropped: list[Dropped] = field(default_factory=list)


class DatasetBuilder:
    def __init__(self, *, study: Study, user, spec: ExportSpec, chunk_size: int = CHUNK_SIZE):
        spec.check()
        self.study = study
        self.user = user
        self.spec = spec
        self.chunk_size = chunk_size
        self.missing_codes = frozenset(study.missing_code_set())
        self.deid = Deidentifier(
            identified=spec.identified,
            date_mode=spec.date_mode,
            rehash_key=secrets.token_bytes(32) if spec.rehash_ids else None,
        )
        self.selection = self._select()
        self.subjects = self._subjects()
        self.cohort = cohort_filter.compile_cohort(spec.cohort, self.missing_codes) if spec.cohort else None
        self.imaging = imaging.provider(self) if spec.imaging else None
        self.subject_total = self.subjects.count()
        self._tables: list[Table] | None = None
        self._plans: dict[int, tuple] = {}

    # ------------------------------------------------------------------ selection

    def _select(self) -> Selection:
        spec = self.spec
        events = [e for arm in self.study.schedule.arms.all() for e in arm.events.all()]
        event_names = {e.name for e in events}
        unknown = sorted(set(spec.events) - event_names)
        if unknown:
            raise ValidationError(
                f"Event(s) {', '.join(unknown)} are not in the study's schedule; "
                f"choose from {', '.join(sorted(event_names))}."
            )
        if spec.events:
            events = [e for e in events if e.name in spec.events]
        all_efs = list(
            EventForm.objects.filter(event__arm__schedule=self.study.schedule)
            .select_related("form", "event")
            .order_by("event__arm__order", "event__order", "order")
        )
        form_names = {ef.form.name for ef in all_efs}
        wanted_items: dict[str, set[str]] = defaultdict(set)
        for ref in spec.items:
            form_name, _, item_name = ref.partition(".")
            wanted_items[form_name].add(item_name)
        asked_forms = set(spec.forms) | set(wanted_items)
        unknown = sorted(asked_forms - form_names)
        if unknown:
            raise ValidationError(
                f"Form(s) {', '.join(unknown)} are not collected in this study; "
                f"choose from {', '.join(sorted(form_names))}."
            )
        chosen = asked_forms or form_names
        event_ids = {e.pk for e in events}
        event_forms: dict[int, list[EventForm]] = defaultdict(list)
        definitions = {}
        for ef in all_efs:
            if ef.event_id in event_ids and ef.form.name in chosen:
                event_forms[ef.event_id].append(ef)
            # A form may be scheduled at several versions; export the newest scheduled one.
            if ef.form.name in chosen and (
                ef.form.name not in definitions or ef.form.pk > definitions[ef.form.name].pk
            ):
                definitions[ef.form.name] = ef.form
        elements = {
            e.ref: e
            for e in DataElement.objects.filter(forms__in=list(definitions.values()))
            .distinct()
            .prefetch_related("permissible_values")
        }
        forms: dict[str, list[Item]] = {}
        dropped: list[Dropped] = []
        for name, form in sorted(definitions.items(), key=lambda kv: _first_use(all_efs, kv[0])):
            items = [_item(form, raw, elements[raw["element"]]) for raw in form.items()]
            known = {i.name for i in items}
            bad = sorted(wanted_items.get(name, set()) - known)
            if bad:
                raise ValidationError(
                    f"Form {name} has no item(s) {', '.join(bad)}; its items are {', '.join(sorted(known))}."
                )
            if wanted_items.get(name):
                items = [i for i in items if i.name in wanted_items[name]]
            kept = []
            for item in items:
                if item.element.identifier and not spec.identified:
                    dropped.append(Dropped(f"{name}.{item.name}", "identifier (de-identified export)"))
                elif item.free_text and spec.drop_free_text:
                    dropped.append(Dropped(f"{name}.{item.name}", "free text (dropped on request)"))
                else:
                    kept.append(item)
            forms[name] = kept
        return Selection(
            events=[e for e in events if event_forms.get(e.pk)],
            event_forms=dict(event_forms),
            forms=forms,
            form_refs={name: form.ref for name, form in definitions.items()},
            dropped=dropped,
        )

    def _subjects(self):
        spec = self.spec
        subjects = access.subjects_visible_to(self.user, self.study)
        if spec.sites:
            visible = set(access.sites_visible_to(self.user, self.study).values_list("code", flat=True))
            unseen = sorted(set(spec.sites) - visible)
            if unseen:
                # Same answer whether the site exists or not: existence must not leak.
                raise ValidationError(
                    f"Site(s) {', '.join(unseen)} are not among your sites ({', '.join(sorted(visible))})."
                )
            subjects = subjects.filter(site__code__in=spec.sites)
        if spec.subjects:
            found = set(subjects.filter(subject_id__in=spec.subjects).values_list("subject_id", flat=True))
            missing = sorted(set(spec.subjects) - found)
            if missing:
                raise ValidationError(
                    f"Subject(s) {', '.join(missing)} are not among the subjects you may export "
                    "(check the ids and the site filter)."
                )
            subjects = subjects.filter(subject_id__in=spec.subjects)
        return subjects

    # ------------------------------------------------------------------ streaming

    def subject_chunks(self) -> Iterator[list[Subject]]:
        """Subjects in id order, a chunk at a time (keyset pagination keeps each query cheap)."""
        base = self.subjects.select_related("site", "arm", "derived_from").order_by("subject_id")
        last = None
        while True:
            query = base if last is None else base.filter(subject_id__gt=last)
            chunk = list(query[: self.chunk_size])
            if not chunk:
                return
            last = chunk[-1].subject_id
            yield chunk

    def selected_subject_chunks(self) -> Iterator[list[Subject]]:
        """Subject chunks after the cohort filter (which needs their records)."""
        if self.cohort is None:
            yield from self.subject_chunks()
            return
        for chunk, _records in self.record_chunks():
            yield chunk

    def record_chunks(self) -> Iterator[tuple[list[Subject], dict[int, dict]]]:
        """(subjects, records by subject pk → {(event id, form name, instance): (status, data)})."""
        event_ids = [e.pk for e in self.selection.events]
        form_names = list(self.selection.forms)
        for chunk in self.subject_chunks():
            records: dict[int, dict] = defaultdict(dict)
            query = FormRecord.objects.filter(subject__in=[s.pk for s in chunk]).order_by()
            if self.cohort is None:
                # A cohort expression may name any item, so it reads every record of the subject.
                query = query.filter(event_id__in=event_ids, form_name__in=form_names)
            for subject_pk, event_id, form_name, instance, status, data in _raw_rows(
                query.values_list("subject_id", "event_id", "form_name", "instance", "status", "data")
            ):
                records[subject_pk][(event_id, form_name, instance)] = (status, data)
            if self.cohort is not None:
                extra = self._cohort_imaging(chunk)
                chunk = [
                    s
                    for s in chunk
                    if self.cohort(s, records.get(s.pk, {}), self.event_names, extra.get(s.pk))
                ]
            yield chunk, records

    def _cohort_imaging(self, chunk) -> dict[int, dict]:
        if not hasattr(self, "_cohort_provider"):
            self._cohort_provider = imaging.provider(self)
        if self._cohort_provider is None:
            return {}
        summary = self._cohort_provider.subject_values(chunk)
        return {
            pk: {
                "imaging_study_count": v["count"],
                "modality_count": len(v["modalities"].split("|")) if v["modalities"] else 0,
                "imaging_modalities": v["modalities"] or "",
            }
            for pk, v in summary.items()
        }

    @property
    def event_names(self) -> dict[int, str]:
        if not hasattr(self, "_event_names"):
            from capture.definitions.models import Event

            self._event_names = dict(
                Event.objects.filter(arm__schedule=self.study.schedule).values_list("pk", "name")
            )
        return self._event_names

    # ------------------------------------------------------------------ shape

    def _max_counts(self) -> tuple[dict, dict]:
        """Max instance per (event, form) of repeating event forms, max rows per (event, form, group)."""
        sel = self.selection
        repeating = [ef for efs in sel.event_forms.values() for ef in efs if ef.repeating]
        instances: dict[tuple[int, str], int] = {}
        if repeating:
            from django.db.models import Max

            for row in (
                FormRecord.objects.filter(
                    subject__in=self.subjects,
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
                    subject__in=self.subjects,
                    event_id__in=[e.pk for e in sel.events],
                    form_name__in=list(grouped_forms),
                )
                .values_list("event_id", "form_name", "data")
                .iterator(chunk_size=2000)
            ):
                for group in grouped_forms[form_name]:
                    count = len(data.get(group) or [])
                    key = (event_id, form_name, group)
                    rows[key] = max(rows[key], count)
        return instances, rows

    def tables(self) -> list[Table]:
        if self._tables is None:
            layout = self.spec.layout
            if layout == "wide":
                self._tables = [self._wide()]
            elif layout == "long":
                self._tables = [self._long()]
            else:
                self._tables = self._tidy()
            if self.imaging is not None and layout != "wide":
                self._tables.append(self.imaging.studies_table())
        return self._tables

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
                    note=self._date_note(),
                )
            )
        return cols

    def _date_note(self) -> str:
        return {
            "shift": "shifted by the subject's date shift",
            "offset": "days since enrolment",
            "none": "real date (identified export)",
        }[self.deid.date_mode]

    def _item_columns(
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
            datatype, codes, note = self._datatype(item)
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

    def _datatype(self, item: Item) -> tuple[str, tuple, str]:
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
            return element.datatype, (), self._date_note()
        if element.datatype in ("integer", "decimal", "time"):
            return element.datatype, (), ""
        return "text", (), ""

    def _ambiguous(self, item: Item) -> bool:
        if not hasattr(self, "_name_forms"):
            counts: dict[str, int] = defaultdict(int)
            for items in self.selection.forms.values():
                for name in {i.name for i in items}:
                    counts[name] += 1
            self._name_forms = counts
        return self._name_forms[item.name] > 1

    def _status_column(
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

    def _wide(self) -> Table:
        sel = self.selection
        instances, group_rows = self._max_counts()
        names = NameBook()
        columns = self.subject_columns(names)
        if self.imaging is not None:
            columns += self.imaging.subject_columns(names)
        for event in sel.events:
            for ef in sel.event_forms[event.pk]:
                form = ef.form.name
                top = max(instances.get((event.pk, form), 1), 1) if ef.repeating else 1
                for instance in range(1, top + 1):
                    suffix = f"_{event.name}" + (f"_i{instance}" if ef.repeating else "")
                    label_suffix = f" [{event.name}" + (f" #{instance}]" if ef.repeating else "]")
                    columns.append(
                        self._status_column(
                            names,
                            form,
                            suffix=suffix,
                            label_suffix=label_suffix,
                            event=event,
                            instance=instance,
                        )
                    )
                    for item in sel.forms[form]:
                        rows = group_rows.get((event.pk, form, item.group), 1) if item.repeating else 1
                        columns += self._item_columns(
                            item,
                            names,
                            suffix=suffix,
                            label_suffix=label_suffix,
                            event=event,
                            instance=instance,
                            rows=rows,
                        )

        # Driven by the records rather than the cells: each record fills its own columns, and the
        # cells of records a subject does not have stay blank without being looked at.
        width = len(columns)
        fixed = [
            (n, self._getter(col)) for n, col in enumerate(columns) if col.source not in ("record", "status")
        ]
        by_record: dict[tuple, list] = defaultdict(list)
        for n, col in enumerate(columns):
            if col.source in ("record", "status"):
                by_record[(col.event_id, col.form, col.instance)].append((n, self._cell_getter(col)))

        def batches():
            for chunk, records in self.record_chunks():
                extra = self.imaging.subject_values(chunk) if self.imaging is not None else {}
                rows = []
                for subject in chunk:
                    row = [None] * width
                    x = extra.get(subject.pk)
                    for n, get in fixed:
                        row[n] = get(subject, None, None, None, x, None)
                    for key, (status, data) in records.get(subject.pk, {}).items():
                        for n, get in by_record.get(key, ()):
                            row[n] = get(data, status, subject)
                    rows.append(row)
                yield rows

        return Table("dataset", "Dataset (wide)", columns, batches)

    def _cell_getter(self, col: Column):
        """(record data, record status, subject) -> the cell, for a column of a known record."""
        if col.source == "status":
            return lambda data, status, s: status
        conv = converter(col, self.missing_codes, self.deid)
        name, group, row = col.item.name, col.item.group, col.row
        if row is None:
            return lambda data, status, s: conv(data.get(name), s)
        index = row - 1

        def grouped(data, status, s):
            rows = data.get(group)
            if not rows or index >= len(rows):
                return None
            return conv(rows[index].get(name), s)

        return grouped

    def _context_columns(self, names: NameBook) -> list[Column]:
        event_codes = tuple((e.name, e.title, "") for e in self.selection.events)
        return [
            Column(names.take("event"), "Event", "code", "context", key="event", codes=event_codes),
            Column(
                names.take("event_day"), "Scheduled day of the event", "integer", "context", key="event_day"
            ),
            Column(names.take("instance"), "Instance", "integer", "context", key="instance"),
        ]

    def _long(self) -> Table:
        sel = self.selection
        _, group_rows = self._max_counts()
        form_rows: dict[tuple[str, str], int] = defaultdict(int)
        for (_, form, group), count in group_rows.items():
            form_rows[(form, group)] = max(form_rows[(form, group)], count)
        names = NameBook()
        columns = self.subject_columns(names) + self._context_columns(names)
        for form, items in sel.forms.items():
            columns.append(self._status_column(names, form))
            for item in items:
                rows = form_rows.get((form, item.group), 1) if item.repeating else 1
                columns += self._item_columns(item, names, suffix="", label_suffix="", rows=rows)
        events = {e.pk: e for e in sel.events}
        order = {e.pk: n for n, e in enumerate(sel.events)}

        def batches():
            for chunk, records in self.record_chunks():
                rows = []
                for subject in chunk:
                    recs = records.get(subject.pk, {})
                    slots = sorted(
                        {(ev, inst) for (ev, form, inst) in recs if ev in events and form in sel.forms},
                        key=lambda s: (order[s[0]], s[1]),
                    )
                    for event_id, instance in slots:
                        rows.append(self._row(columns, subject, recs, events[event_id], instance, None))
                yield rows

        return Table("dataset", "Dataset (long)", columns, batches)

    def _tidy(self) -> list[Table]:
        sel = self.selection
        names = NameBook()
        subject_cols = self.subject_columns(names)
        if self.imaging is not None:
            subject_cols += self.imaging.subject_columns(names)

        def subject_batches():
            for chunk in self.selected_subject_chunks():
                extra = self.imaging.subject_values(chunk) if self.imaging is not None else {}
                yield [self._row(subject_cols, s, {}, None, None, extra.get(s.pk)) for s in chunk]

        tables = [Table("subjects", "Subjects", subject_cols, subject_batches)]
        events = {e.pk: e for e in sel.events}
        order = {e.pk: n for n, e in enumerate(sel.events)}
        for form, items in sel.forms.items():
            flat = [i for i in items if not i.repeating]
            names = NameBook()
            columns = self.subject_columns(names, full=False) + self._context_columns(names)
            columns.append(self._status_column(names, form))
            for item in flat:
                columns += self._item_columns(item, names, suffix="", label_suffix="")
            tables.append(
                Table(safe_table(form), form, columns, self._tidy_batches(form, columns, events, order))
            )
            for group in dict.fromkeys(i.group for i in items if i.repeating):
                gnames = NameBook()
                gcols = self.subject_columns(gnames, full=False) + self._context_columns(gnames)
                gcols.append(
                    Column(gnames.take("row"), "Row of the item group", "integer", "context", key="row")
                )
                for item in (i for i in items if i.group == group):
                    gcols += self._item_columns(item, gnames, suffix="", label_suffix="", rows=0)
                tables.append(
                    Table(
                        safe_table(f"{form}_{group}"),
                        f"{form}: {group}",
                        gcols,
                        self._tidy_batches(form, gcols, events, order, group=group),
                    )
                )
        return tables

    def _tidy_batches(self, form, columns, events, order, group=None):
        def batches():
            for chunk, records in self.record_chunks():
                rows = []
                for subject in chunk:
                    recs = records.get(subject.pk, {})
                    keys = sorted(
                        (k for k in recs if k[1] == form and k[0] in events),
                        key=lambda k: (order[k[0]], k[2]),
                    )
                    for event_id, _, instance in keys:
                        if group is None:
                            rows.append(self._row(columns, subject, recs, events[event_id], instance, None))
                            continue
                        status, data = recs[(event_id, form, instance)]
                        for n, group_row in enumerate(data.get(group) or [], start=1):
                            row_rec = {(event_id, form, instance): (status, group_row)}
                            rows.append(
                                self._row(columns, subject, row_rec, events[event_id], instance, None, n)
                            )
                yield rows

        return batches

    # ------------------------------------------------------------------ values

    def _row(self, columns, subject, recs, event, instance, extra, group_row=None) -> list:
        plan = self._plans.get(id(columns))
        if plan is None:
            # Compiled once per table: a getter per column, so a row costs one call per cell.
            plan = self._plans[id(columns)] = (columns, [self._getter(col) for col in columns])
        return [get(subject, recs, event, instance, extra, group_row) for get in plan[1]]

    def _getter(self, col: Column):
        source, key = col.source, col.key
        if source == "subject":
            value = self._subject_value
            return lambda s, r, e, i, x, g: value(key, s)
        if source == "context":
            if key == "event":
                return lambda s, r, e, i, x, g: e.name
            if key == "event_day":
                return lambda s, r, e, i, x, g: e.day
            if key == "instance":
                return lambda s, r, e, i, x, g: i
            return lambda s, r, e, i, x, g: g
        if source == "imaging":
            return lambda s, r, e, i, x, g: x.get(key) if x else None
        fixed = (col.event_id, col.form, col.instance) if col.event_id else None
        form = col.form
        if source == "status":
            if fixed:
                return lambda s, r, e, i, x, g: rec[0] if (rec := r.get(fixed)) else None
            return lambda s, r, e, i, x, g: rec[0] if (rec := r.get((e.pk, form, i))) else None
        conv = converter(col, self.missing_codes, self.deid)
        name, group, row = col.item.name, col.item.group, col.row
        if row is None:

            def value_of(data, s):
                return conv(data.get(name), s)
        else:
            index = row - 1

            def value_of(data, s):
                rows = data.get(group)
                if not rows or index >= len(rows):
                    return None
                return conv(rows[index].get(name), s)

        if fixed:
            return lambda s, r, e, i, x, g: value_of(rec[1], s) if (rec := r.get(fixed)) else None
        return lambda s, r, e, i, x, g: value_of(rec[1], s) if (rec := r.get((e.pk, form, i))) else None

    def _subject_value(self, key, subject: Subject):
        if key == "subject_id":
            return self.deid.subject_key(subject.subject_id)
        if key == "site":
            return subject.site.code
        if key == "kind":
            return subject.kind
        if key == "arm":
            return subject.arm.name
        if key == "derived_from":
            return self.deid.subject_key(subject.derived_from.subject_id) if subject.derived_from_id else None
        if key == "model_type":
            return subject.model_type or None
        if key == "enrollment_date":
            return self.deid.date(subject.enrollment_date, subject)
        raise KeyError(key)


def _raw_rows(queryset):
    """The queryset's rows through a plain cursor, JSON decoded here: Django's per-value field
    converters cost more than the rest of a wide export together (measured: 1.9 s of 3 s)."""
    sql, params = queryset.query.sql_with_params()
    loads = json.loads
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            for *head, data in batch:
                yield (*head, loads(data) if isinstance(data, (str, bytes)) else data)


def converter(col: Column, missing_codes, deid: Deidentifier):
    """A function (stored value, subject) -> cell value for one column; see `convert`."""
    missing = {code: Missing(code) for code in missing_codes}
    datatype = col.datatype
    if datatype == "option":
        option = col.option

        def option_value(raw, subject):
            if raw.__class__ is str and raw in missing:
                return missing[raw]
            return 1 if raw and option in raw else 0

        return option_value
    if datatype in ("integer", "boolean", "decimal", "code", "text", "time"):
        cast = float if datatype == "decimal" else int if datatype in ("integer", "boolean") else str

        def scalar(raw, subject):
            if raw is None or raw == "":
                return None
            if raw.__class__ is str and raw in missing:
                return missing[raw]
            return cast(raw)

        return scalar
    if datatype == "date" and deid.date_mode == "shift":
        fromiso, delta = dt.date.fromisoformat, dt.timedelta

        def shifted(raw, subject):
            if raw is None or raw == "":
                return None
            if raw in missing:
                return missing[raw]
            return fromiso(raw) + delta(days=subject.date_shift_days)

        return shifted
    return lambda raw, subject: convert(col, raw, subject, missing_codes, deid)


def convert(col: Column, raw, subject: Subject, missing_codes, deid: Deidentifier):
    """A stored value (see capture.records.validation) as the export's cell value."""
    datatype = col.datatype
    if datatype == "option":
        if isinstance(raw, str) and raw in missing_codes:
            return Missing(raw)
        return 1 if raw and col.option in raw else 0
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str) and raw in missing_codes:
        return Missing(raw)
    if datatype == "multi":
        if not isinstance(raw, list):
            return str(raw)
        order = {code: n for n, (code, _, _) in enumerate(col.codes)}  # the form's order, not storage's
        return "|".join(sorted(raw, key=lambda code: order.get(code, len(order))))
    if datatype in ("code", "text", "time"):
        return str(raw)
    if datatype == "boolean":
        return int(raw)
    if datatype == "integer":
        return int(raw)
    if datatype == "decimal":
        return float(raw)
    element_type = col.item.element.datatype
    value = dt.date.fromisoformat(raw) if element_type == "date" else dt.datetime.fromisoformat(raw)
    return deid.date(value, subject)


def _first_use(event_forms, form_name: str) -> int:
    for n, ef in enumerate(event_forms):
        if ef.form.name == form_name:
            return n
    return len(event_forms)


def _item(form, raw: dict, element: DataElement) -> Item:
    info = ElementInfo(
        public_id=element.public_id,
        version=element.version,
        name=element.name,
        long_name=element.long_name,
        question=element.question,
        datatype=element.datatype,
        unit=element.unit,
        identifier=element.identifier,
        codes=tuple((pv.code, pv.meaning, pv.concept_code) for pv in element.permissible_values.all()),
    )
    return Item(
        form=form.name,
        form_version=form.version,
        form_title=form.title,
        name=raw["name"],
        label=raw.get("label") or element.question,
        element=info,
        group=raw["group"] if raw["repeating"] else None,
        repeating=bool(raw["repeating"]),
        checkbox=raw.get("widget") == "checkbox",
    )


def safe_table(name: str) -> str:
    return safe_name(name)
