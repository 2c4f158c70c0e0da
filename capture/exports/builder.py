"""The dataset builder: which subjects, which columns, and the rows, streamed in chunks.

`DatasetBuilder(study=, user=, spec=)` resolves the selection against the study's schedule
and what the user may see (capture.studies.access), applies the de-identification rules, and
exposes the export as tables. A table's `batches()` reads subjects in chunks (keyset
pagination) with their form records, so memory holds one chunk at a time whatever the size of
the study. Writers consume batches; nothing here knows about file formats.

De-identification (decided here, once, for every format, from the export's disclosure policy
`Disclosure.for_export`, capture/studies/disclosure.py):
- identifier-flagged items are left out unless the export is identified;
- dates are shifted by the subject's `date_shift_days`, or replaced by days since enrolment,
  or (identified only) kept;
- subject ids and imaging study UIDs may be replaced by an HMAC with a key made for this
  export and then forgotten, so two exports cannot be linked by id or UID;
- free-text items (text without permissible values) are left out on request;
- a cohort filter reads the values the policy shows, never stored ones (cohort.py).
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import secrets
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import orjson
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast

from capture.definitions.models import DataElement, EventForm
from capture.records.models import FormRecord
from capture.studies import access
from capture.studies.disclosure import Disclosure
from capture.studies.models import Study, Subject

from . import cohort as cohort_filter
from . import imaging
from .columns import (
    BOOLEAN_CODES,
    OPTION_CODES,
    STATUS_CODES,
    Batch,
    Column,
    ElementInfo,
    Item,
    Missing,
    NameBook,
    Table,
    safe_name,
)
from .deidentify import Deidentifier
from .spec import ExportSpec

CHUNK_SIZE = 500
KIND_CODES = (("patient", "Patient", ""), ("animal", "Animal model", ""))


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
        # What the export may show: decided by the one disclosure policy, for an export whose
        # identified/de-identified choice the service has checked against the user's rights.
        self.policy = Disclosure.for_export(study, identified=spec.identified)
        self.deid = Deidentifier(
            policy=self.policy,
            date_mode=spec.date_mode,
            rehash_key=secrets.token_bytes(32) if spec.rehash_ids else None,
        )
        self.selection = self._select()
        self.subjects = self._subjects()
        self.cohort = self._compile_cohort(spec.cohort) if spec.cohort else None
        self.imaging = imaging.ImagingColumns(self) if spec.imaging else None
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
                if self.deid.hides(item.element):
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

    def _compile_cohort(self, expression: str):
        """The cohort predicate, on the values this export's policy shows (cohort.py says why)."""
        return cohort_filter.compile_cohort(
            expression,
            self.missing_codes,
            policy=self.policy,
            fields=cohort_filter.study_fields(self.study.schedule),
            event_names=set(self.event_names.values()),
            extra_names=cohort_filter.IMAGING_NAMES,
        )

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

    def _record_query(self, chunk: list[Subject]):
        query = FormRecord.objects.filter(subject__in=[s.pk for s in chunk]).order_by()
        if self.cohort is None:
            # A cohort expression may name any item, so it reads every record of the subject.
            event_ids = [e.pk for e in self.selection.events]
            query = query.filter(event_id__in=event_ids, form_name__in=list(self.selection.forms))
        # The JSON as text, decoded by orjson: Django's and psycopg's decoders take several
        # times longer, and decoding is the largest part of a wide export.
        query = query.annotate(raw=Cast("data", TextField()))
        return query.values_list("subject_id", "event_id", "form_name", "instance", "status", "raw")

    def record_chunks(self) -> Iterator[tuple[list[Subject], dict[int, dict]]]:
        """(subjects, records by subject pk → {(event id, form name, instance): (status, data)})."""
        loads = _loads
        for chunk in self.subject_chunks():
            records: dict[int, dict] = defaultdict(dict)
            for batch in _raw_rows(self._record_query(chunk)):
                for subject_pk, event_id, form_name, instance, status, raw in batch:
                    records[subject_pk][(event_id, form_name, instance)] = (status, loads(raw))
            if self.cohort is not None:
                extra = self._cohort_imaging(chunk)
                chunk = [
                    s
                    for s in chunk
                    if self.cohort(s, records.get(s.pk, {}), self.event_names, extra.get(s.pk))
                ]
            yield chunk, records

    def record_groups(self) -> Iterator[tuple[list[Subject], dict[tuple, tuple[list, list, list]]]]:
        """(subjects, (event id, form name, instance) → (positions in the chunk, statuses, data)),
        positions ascending: the records of a chunk as a wide table reads them, column by column."""
        if self.cohort is not None:
            for chunk, records in self.record_chunks():
                found: dict[tuple, tuple[list, list, list]] = {}
                for position, subject in enumerate(chunk):
                    for key, (status, data) in records.get(subject.pk, {}).items():
                        _add(found, key, position, status, data)
                yield chunk, found
            return
        loads = _loads
        for chunk in self.subject_chunks():
            position_of = {s.pk: n for n, s in enumerate(chunk)}
            found = {}
            for batch in _raw_rows(self._record_query(chunk)):
                for subject_pk, event_id, form_name, instance, status, raw in batch:
                    got = found.get(key := (event_id, form_name, instance))
                    if got is None:
                        got = found[key] = ([], [], [])
                    got[0].append(position_of[subject_pk])
                    got[1].append(status)
                    got[2].append(loads(raw))
            for key, (positions, statuses, datas) in found.items():
                if positions != sorted(positions):  # rows come in the database's order
                    order = sorted(range(len(positions)), key=positions.__getitem__)
                    found[key] = (
                        [positions[i] for i in order],
                        [statuses[i] for i in order],
                        [datas[i] for i in order],
                    )
            yield chunk, found

    def _cohort_imaging(self, chunk) -> dict[int, dict]:
        if not hasattr(self, "_cohort_provider"):
            self._cohort_provider = imaging.ImagingColumns(self)
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

        # Built a column at a time, per chunk of subjects: the records of one (event, form,
        # instance) fill their columns together (`_RecordColumns`), and the columns of records a
        # chunk does not have stay blank.
        width = len(columns)
        fixed = [(n, col) for n, col in enumerate(columns) if col.source not in ("record", "status")]
        by_record: dict[tuple, list] = defaultdict(list)
        for n, col in enumerate(columns):
            if col.source in ("record", "status"):
                by_record[(col.event_id, col.form, col.instance)].append((n, col))
        plans = {key: _RecordColumns(self, cols) for key, cols in by_record.items()}

        def batches():
            for chunk, found in self.record_groups():
                size = len(chunk)
                extra = self.imaging.subject_values(chunk) if self.imaging is not None else {}
                cells: list = [None] * width
                for n, col in fixed:
                    cells[n] = self._subject_column(col, chunk, extra)
                blank = (None,) * size
                per_chunk: dict = {}  # what converters compute once for all the chunk's subjects
                for key, plan in plans.items():
                    got = found.get(key)
                    if got is None:
                        for n in plan.numbers:
                            cells[n] = blank
                        continue
                    positions, statuses, datas = got
                    whole = len(positions) == size  # every subject has the record, in chunk order
                    subjects = chunk if whole else [chunk[p] for p in positions]
                    shared = per_chunk if whole else {}
                    for n, values in plan.fill(datas, statuses, subjects, shared):
                        if whole:
                            cells[n] = values
                        else:
                            column = [None] * size
                            for p, v in zip(positions, values, strict=True):
                                column[p] = v
                            cells[n] = column
                yield Batch(cells, size)

        return Table("dataset", "Dataset (wide)", columns, batches)

    def _subject_column(self, col: Column, chunk: list[Subject], extra: dict) -> list:
        """The cells of a subject or imaging column for a chunk of subjects."""
        if col.source == "imaging":
            key = col.key
            return [x.get(key) if (x := extra.get(s.pk)) else None for s in chunk]
        get = self._getter(col)
        return [get(s, None, None, None, extra.get(s.pk), None) for s in chunk]

    def _column_maker(self, col: Column):
        """(record data list, status list, subject list) -> the column's cells for those records,
        for the columns `_RecordColumns` does not convert itself (group rows, checkbox options,
        date-times, days since enrolment)."""
        if col.source == "status":
            return lambda datas, statuses, subjects: statuses
        conv = converter(col, self.missing_codes, self.deid)
        name, group, row = col.item.name, col.item.group, col.row
        if row is None:
            return lambda datas, statuses, subjects: [
                conv(d.get(name), s) for d, s in zip(datas, subjects, strict=True)
            ]
        index = row - 1
        return lambda datas, statuses, subjects: [
            conv(rows[index].get(name), s) if (rows := d.get(group)) and index < len(rows) else None
            for d, s in zip(datas, subjects, strict=True)
        ]

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
                yield Batch.from_rows(rows, len(columns))

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
                rows = [self._row(subject_cols, s, {}, None, None, extra.get(s.pk)) for s in chunk]
                yield Batch.from_rows(rows, len(subject_cols))

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
                yield Batch.from_rows(rows, len(columns))

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


def _add(found: dict, key: tuple, position: int, status, data) -> None:
    got = found.get(key)
    if got is None:
        got = found[key] = ([], [], [])
    got[0].append(position)
    got[1].append(status)
    got[2].append(data)


def _loads(raw: str):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN, or an integer beyond 64 bits: orjson refuses them
        return json.loads(raw)


def _raw_rows(queryset):
    """The queryset's rows through a plain cursor, a batch at a time: Django's per-value field
    converters cost more than the rest of a wide export together."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            yield batch


_ONLY_INT = frozenset({int})
_ONLY_FLOAT = frozenset({float})
_ONLY_STR = frozenset({str})
_YES_NO = {"1": 1, "0": 0}


class _RecordColumns:
    """The columns of a wide table that one record (event, form, instance) fills.

    `fill` converts them a column at a time. Plain item columns are read from the records with
    one itemgetter call per record and converted at C speed (map, set checks) when a column
    holds only clean values — the usual case; any blank, missing-data code or unusual stored
    type sends that column through the cell-by-cell rules of `converter`, which define the
    result either way (tests/exports/test_output_stable.py pins it)."""

    def __init__(self, builder: DatasetBuilder, columns: list[tuple[int, Column]]) -> None:
        self.numbers = [n for n, _ in columns]
        self.status = [n for n, col in columns if col.source == "status"]
        plain, self.others = [], []
        for n, col in columns:
            if col.source != "record":
                continue
            fast = _fast_converter(col, builder.missing_codes, builder.deid) if col.row is None else None
            if fast is None:
                self.others.append((n, builder._column_maker(col)))
            else:
                plain.append((n, col.item.name, fast))
        self.plain = [(n, fast) for n, _, fast in plain]
        self.names = tuple(name for _, name, _ in plain)
        self.pick = itemgetter(*self.names) if len(self.names) > 1 else None

    def fill(
        self, datas: list[dict], statuses: list, subjects: list, shared: dict
    ) -> Iterator[tuple[int, Sequence]]:
        """(column number, cells) for each column; `shared` holds what the converters compute
        once for these subjects (their date shifts)."""
        for n in self.status:
            yield n, statuses
        if self.plain:
            for (n, fast), values in zip(self.plain, self._values(datas), strict=True):
                yield n, fast(values, subjects, shared)
        for n, make in self.others:
            yield n, make(datas, statuses, subjects)

    def _values(self, datas: list[dict]) -> list[Sequence]:
        """The raw values of the plain columns, a sequence per column."""
        names = self.names
        if self.pick is None:
            return [[d.get(names[0]) for d in datas]]
        try:
            rows = list(map(self.pick, datas))
        except KeyError:  # an item a record does not hold (added to the form later, or hidden)
            rows = [tuple(map(d.get, names)) for d in datas]
        return list(zip(*rows, strict=True))


def _fast_converter(col: Column, missing_codes: frozenset, deid: Deidentifier):
    """(raw values, their subjects, shared) -> cells, or None where only `converter` applies."""
    conv = converter(col, missing_codes, deid)
    special = missing_codes | {""}  # values the cell-by-cell rules must see
    datatype = col.datatype

    def one(v):
        return conv(v, None)

    if datatype == "integer":
        return lambda values, subjects, shared: (
            values if _ONLY_INT.issuperset(map(type, values)) else [conv(v, None) for v in values]
        )
    if datatype == "decimal":
        return lambda values, subjects, shared: (
            values if _ONLY_FLOAT.issuperset(map(type, values)) else [conv(v, None) for v in values]
        )
    if datatype == "boolean" and special.isdisjoint(_YES_NO):
        return lambda values, subjects, shared: (
            list(map(_YES_NO.__getitem__, values))
            if _ONLY_STR.issuperset(map(type, values)) and _YES_NO.keys() >= set(values)
            else [conv(v, None) for v in values]
        )
    if datatype in ("code", "text", "time"):
        return lambda values, subjects, shared: (
            values
            if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values)
            else [conv(v, None) for v in values]
        )
    if datatype == "date" and deid.date_mode in ("shift", "none"):
        fromiso = dt.date.fromisoformat
        if deid.date_mode == "none":
            return lambda values, subjects, shared: (
                list(map(fromiso, values))
                if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values)
                else [conv(v, None) for v in values]
            )

        def shifted(values, subjects, shared):
            deltas = shared.get("deltas")
            if deltas is None:
                deltas = shared["deltas"] = [dt.timedelta(days=deid.shift_days(s)) for s in subjects]
            if _ONLY_STR.issuperset(map(type, values)) and special.isdisjoint(values):
                return list(map(operator.add, map(fromiso, values), deltas))
            return [
                fromiso(v) + delta if v.__class__ is str and v not in special else one(v)
                for v, delta in zip(values, deltas, strict=True)
            ]

        return shifted
    return None


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
        fromiso, delta, shift_days = dt.date.fromisoformat, dt.timedelta, deid.shift_days

        def shifted(raw, subject):
            if raw is None or raw == "":
                return None
            if raw in missing:
                return missing[raw]
            return fromiso(raw) + delta(days=shift_days(subject))

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
