"""Reading a chunk of subjects' form records, as the layouts want them.

Records are read through a plain cursor with their JSON as text, decoded by orjson: Django's
per-value field converters and the database drivers' JSON decoders cost more than the rest
of a wide export together. Two shapes come out:
- by subject: subject pk -> {(event id, form name, instance): (status, data)} (long and tidy
  layouts, the cohort filter, ODM);
- by record: (event id, form name, instance) -> (positions in the chunk, statuses, data),
  positions ascending (the wide layout fills a record's columns together, column by column).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from itertools import chain, groupby
from operator import itemgetter

import orjson
from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast

from capture.records.models import FormRecord
from capture.studies.models import Subject

from .selection import Selection

Grouped = dict[tuple, tuple[list, list, list]]
_RECORD_KEY = itemgetter(1, 2, 3)  # (event id, form name, instance) of a record_query row


def record_query(chunk: list[Subject], selection: Selection | None):
    """The records of `chunk`: those of the selected events and forms, or with `selection`
    None every record (a cohort expression may name any item)."""
    query = FormRecord.objects.filter(subject__in=[s.pk for s in chunk]).order_by()
    if selection is not None:
        event_ids = [e.pk for e in selection.events]
        query = query.filter(event_id__in=event_ids, form_name__in=list(selection.forms))
    query = query.annotate(raw=Cast("data", TextField()))
    return query.values_list("subject_id", "event_id", "form_name", "instance", "status", "raw")


def by_subject(query) -> dict[int, dict]:
    """Subject pk -> {(event id, form name, instance): (status, data)}."""
    records: dict[int, dict] = defaultdict(dict)
    for batch in raw_rows(query):
        for subject_pk, event_id, form_name, instance, status, raw in batch:
            records[subject_pk][(event_id, form_name, instance)] = (status, loads(raw))
    return records


def by_record(query, chunk: list[Subject]) -> Grouped:
    """(event id, form name, instance) -> (positions in `chunk`, statuses, data), positions ascending.

    The rows are sorted by record key and each key's rows taken apart with zip and map, so the
    work per record runs at C speed (a Python loop over the rows cost as much as decoding them)."""
    position_of = {s.pk: n for n, s in enumerate(chunk)}.__getitem__
    rows = list(chain.from_iterable(raw_rows(query)))
    rows.sort(key=_RECORD_KEY)  # stable: a key's rows stay in the database's order
    found: Grouped = {}
    for key, group in groupby(rows, _RECORD_KEY):
        subject_pks, _, _, _, statuses, raws = zip(*group, strict=True)
        positions = list(map(position_of, subject_pks))
        datas = decode_all(raws)
        if positions != sorted(positions):  # rows come in the database's order
            order = sorted(range(len(positions)), key=positions.__getitem__)
            found[key] = (
                [positions[i] for i in order],
                [statuses[i] for i in order],
                [datas[i] for i in order],
            )
        else:
            found[key] = (positions, list(statuses), datas)
    return found


def regroup(chunk: list[Subject], records: dict[int, dict]) -> Grouped:
    """Records already read by subject (`by_subject`), in the shape of `by_record`."""
    found: Grouped = {}
    for position, subject in enumerate(chunk):
        for key, (status, data) in records.get(subject.pk, {}).items():
            got = found.get(key)
            if got is None:
                got = found[key] = ([], [], [])
            got[0].append(position)
            got[1].append(status)
            got[2].append(data)
    return found


def decode_all(raws) -> list:
    """The JSON texts `raws`, decoded (orjson at C speed; the lenient `loads` if one needs it)."""
    try:
        return list(map(orjson.loads, raws))
    except orjson.JSONDecodeError:
        return list(map(loads, raws))


def loads(raw: str):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN, or an integer beyond 64 bits: orjson refuses them
        return json.loads(raw)


def raw_rows(queryset) -> Iterator[list[tuple]]:
    """The queryset's rows through a plain cursor, a batch at a time."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            yield batch
