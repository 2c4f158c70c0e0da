"""capture.dbcopy.insert_rows, the bulk writers' INSERT: every row stored, in the order given, with
consecutive ids (records.bulk._inserted_ids relies on that on SQLite), across statement and batch
boundaries, with text the database must not rewrite."""

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from capture.dbcopy import ROWS_PER_STATEMENT, insert_rows

NAMES = [f"group {n:03d} — «%s» ? 'quoted'" for n in range(2 * ROWS_PER_STATEMENT + 37)]


@pytest.mark.django_db
def test_insert_rows_stores_every_row_in_order_with_consecutive_ids_across_statements_and_batches():
    with transaction.atomic():
        insert_rows(Group, ["name"], ((name,) for name in NAMES), batch=ROWS_PER_STATEMENT + 20)
    stored = list(Group.objects.order_by("pk").values_list("pk", "name"))
    assert [name for _, name in stored] == NAMES
    ids = [pk for pk, _ in stored]
    assert ids == list(range(ids[0], ids[0] + len(NAMES)))


@pytest.mark.django_db
def test_insert_rows_of_one_row_and_of_none():
    with transaction.atomic():
        insert_rows(Group, ["name"], [])
        insert_rows(Group, ["name"], [("alone",)])
    assert list(Group.objects.values_list("name", flat=True)) == ["alone"]
