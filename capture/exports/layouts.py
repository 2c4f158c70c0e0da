"""The export's tables in each layout: their columns (planning.py) and their batches of rows.

- wide: one row per subject, a column per (event, form, instance, item, group row);
- long: one row per subject, event and instance, a column per (form, item, group row);
- tidy: a subjects table, a table per form and one per repeating item group.

Each table's `batches()` reads the builder's subject chunks with their records (reading.py)
and converts the values (convert.py), one chunk in memory at a time.
"""

from __future__ import annotations

from collections import defaultdict

from .columns import Batch, Column, NameBook, Table, safe_name
from .convert import RecordColumns
from .planning import max_counts


def wide(builder) -> Table:
    columns = _wide_columns(builder)
    # Built a column at a time, per chunk of subjects: the records of one (event, form,
    # instance) fill their columns together (`RecordColumns`), and the columns of records a
    # chunk does not have stay blank.
    width = len(columns)
    fixed = [(n, col) for n, col in enumerate(columns) if col.source not in ("record", "status")]
    by_record: dict[tuple, list] = defaultdict(list)
    for n, col in enumerate(columns):
        if col.source in ("record", "status"):
            by_record[(col.event_id, col.form, col.instance)].append((n, col))
    plans = {key: RecordColumns(builder.cells, cols) for key, cols in by_record.items()}

    def batches():
        for chunk, found in builder.record_groups():
            extra = builder.imaging.subject_values(chunk) if builder.imaging is not None else {}
            cells: list = [None] * width
            for n, col in fixed:
                cells[n] = builder.cells.subject_column(col, chunk, extra)
            _fill_records(cells, plans, chunk, found)
            yield Batch(cells, len(chunk))

    return Table("dataset", "Dataset (wide)", columns, batches)


def _wide_columns(builder) -> list[Column]:
    sel, planner = builder.selection, builder.planner
    instances, group_rows = max_counts(builder.subjects, sel)
    names = NameBook()
    columns = planner.subject_columns(names)
    if builder.imaging is not None:
        columns += builder.imaging.subject_columns(names)
    for event in sel.events:
        for ef in sel.event_forms[event.pk]:
            form = ef.form.name
            top = max(instances.get((event.pk, form), 1), 1) if ef.repeating else 1
            for instance in range(1, top + 1):
                suffix = f"_{event.name}" + (f"_i{instance}" if ef.repeating else "")
                label_suffix = f" [{event.name}" + (f" #{instance}]" if ef.repeating else "]")
                where = {"suffix": suffix, "label_suffix": label_suffix, "event": event, "instance": instance}
                columns.append(planner.status_column(names, form, **where))
                for item in sel.forms[form]:
                    rows = group_rows.get((event.pk, form, item.group), 1) if item.repeating else 1
                    columns += planner.item_columns(item, names, rows=rows, **where)
    return columns


def _fill_records(cells: list, plans: dict[tuple, RecordColumns], chunk: list, found: dict) -> None:
    """Fill `cells` (a list per column) with the record columns of a chunk of subjects."""
    size = len(chunk)
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


def long(builder) -> Table:
    sel, planner = builder.selection, builder.planner
    _, group_rows = max_counts(builder.subjects, sel)
    form_rows: dict[tuple[str, str], int] = defaultdict(int)
    for (_, form, group), count in group_rows.items():
        form_rows[(form, group)] = max(form_rows[(form, group)], count)
    names = NameBook()
    columns = planner.subject_columns(names) + planner.context_columns(names)
    for form, items in sel.forms.items():
        columns.append(planner.status_column(names, form))
        for item in items:
            rows = form_rows.get((form, item.group), 1) if item.repeating else 1
            columns += planner.item_columns(item, names, suffix="", label_suffix="", rows=rows)
    events = {e.pk: e for e in sel.events}
    order = {e.pk: n for n, e in enumerate(sel.events)}
    row = builder.cells.row

    def batches():
        for chunk, records in builder.record_chunks():
            rows = []
            for subject in chunk:
                recs = records.get(subject.pk, {})
                slots = sorted(
                    {(ev, inst) for (ev, form, inst) in recs if ev in events and form in sel.forms},
                    key=lambda s: (order[s[0]], s[1]),
                )
                for event_id, instance in slots:
                    rows.append(row(columns, subject, recs, events[event_id], instance, None))
            yield Batch.from_rows(rows, len(columns))

    return Table("dataset", "Dataset (long)", columns, batches)


def tidy(builder) -> list[Table]:
    sel = builder.selection
    tables = [_subjects_table(builder)]
    for form, items in sel.forms.items():
        tables.append(_form_table(builder, form, [i for i in items if not i.repeating]))
        for group in dict.fromkeys(i.group for i in items if i.repeating):
            tables.append(_group_table(builder, form, group, [i for i in items if i.group == group]))
    return tables


def _subjects_table(builder) -> Table:
    names = NameBook()
    columns = builder.planner.subject_columns(names)
    if builder.imaging is not None:
        columns += builder.imaging.subject_columns(names)
    row = builder.cells.row

    def batches():
        for chunk in builder.selected_subject_chunks():
            extra = builder.imaging.subject_values(chunk) if builder.imaging is not None else {}
            rows = [row(columns, s, {}, None, None, extra.get(s.pk)) for s in chunk]
            yield Batch.from_rows(rows, len(columns))

    return Table("subjects", "Subjects", columns, batches)


def _form_table(builder, form: str, items: list) -> Table:
    planner = builder.planner
    names = NameBook()
    columns = planner.subject_columns(names, full=False) + planner.context_columns(names)
    columns.append(planner.status_column(names, form))
    for item in items:
        columns += planner.item_columns(item, names, suffix="", label_suffix="")
    return Table(safe_name(form), form, columns, _tidy_batches(builder, form, columns))


def _group_table(builder, form: str, group: str, items: list) -> Table:
    planner = builder.planner
    names = NameBook()
    columns = planner.subject_columns(names, full=False) + planner.context_columns(names)
    columns.append(Column(names.take("row"), "Row of the item group", "integer", "context", key="row"))
    for item in items:
        columns += planner.item_columns(item, names, suffix="", label_suffix="", rows=0)
    return Table(
        safe_name(f"{form}_{group}"),
        f"{form}: {group}",
        columns,
        _tidy_batches(builder, form, columns, group=group),
    )


def _tidy_batches(builder, form, columns, group=None):
    events = {e.pk: e for e in builder.selection.events}
    order = {e.pk: n for n, e in enumerate(builder.selection.events)}
    row = builder.cells.row

    def batches():
        for chunk, records in builder.record_chunks():
            rows = []
            for subject in chunk:
                recs = records.get(subject.pk, {})
                keys = sorted(
                    (k for k in recs if k[1] == form and k[0] in events),
                    key=lambda k: (order[k[0]], k[2]),
                )
                for event_id, _, instance in keys:
                    if group is None:
                        rows.append(row(columns, subject, recs, events[event_id], instance, None))
                        continue
                    status, data = recs[(event_id, form, instance)]
                    for n, group_row in enumerate(data.get(group) or [], start=1):
                        row_rec = {(event_id, form, instance): (status, group_row)}
                        rows.append(row(columns, subject, row_rec, events[event_id], instance, None, n))
            yield Batch.from_rows(rows, len(columns))

    return batches
