"""The entry page's per-field links (history, open queries, raise a query) and its shape (issue 18):
the links come from a template, the view only asks access, calls the page service and renders."""

import ast
from pathlib import Path

from django.urls import reverse

from capture.records import entry, entry_page, views
from capture.records.services import close_query, open_query, save_record

VISIT = {"visit_date": "2025-03-01", "sex": "1", "pregnant": "0", "dob": "1970-05-01", "weight": "70"}

HISTORY = (
    '<a class="hist" href="../history/weight/" title="History of this field (who, when, old → new, why)">'
    "history</a>"
)
RAISE = '<a class="qraise" href="../queries/new/?field=weight" title="Raise a query on this field">query</a>'


def badge(n: int) -> str:
    return (
        f'<a class="qbadge" href="../queries/?field=weight" title="Open queries on this field">{n} open</a>'
    )


def entry_url(subject) -> str:
    return reverse("records:entry", args=[subject.study.slug, subject.subject_id, "baseline", "visit", 1])


def weight_block(client, subject) -> str:
    page = client.get(entry_url(subject)).content.decode()
    return page[page.index('id="f-weight"') : page.index('id="f-height"')]


def test_a_saved_field_links_its_history_its_open_queries_and_a_new_query(client, personas, ecrf_subjects):
    subject = ecrf_subjects["a"]
    record = save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values=VISIT,
    )
    open_query(actor=personas["monitor"], record=record, field="weight", text="Source says 72?")
    client.force_login(personas["data_manager"])
    assert HISTORY + badge(1) + RAISE in weight_block(client, subject)


def test_the_open_query_badge_follows_the_count_and_goes_when_they_are_closed(
    client, personas, ecrf_subjects
):
    subject = ecrf_subjects["a"]
    record = save_record(
        actor=personas["coordinator_a"],
        subject=subject,
        event_name="baseline",
        form_name="visit",
        values=VISIT,
    )
    client.force_login(personas["coordinator_a"])
    assert HISTORY + "</div>" in weight_block(client, subject)  # no badge, no raise link
    first = open_query(actor=personas["monitor"], record=record, field="weight", text="Check")
    assert HISTORY + badge(1) + "</div>" in weight_block(client, subject)
    second = open_query(actor=personas["monitor"], record=record, field="weight", text="Again")
    assert HISTORY + badge(2) + "</div>" in weight_block(client, subject)
    close_query(actor=personas["monitor"], query=first)
    close_query(actor=personas["monitor"], query=second)
    block = weight_block(client, subject)
    assert HISTORY + "</div>" in block and "qbadge" not in block


def test_a_form_not_saved_yet_has_no_field_links(client, personas, ecrf_subjects):
    client.force_login(personas["data_manager"])
    page = client.get(entry_url(ecrf_subjects["a"])).content.decode()
    assert 'id="f-weight"' in page and "../history/" not in page and "qraise" not in page


def _functions(module):
    tree = ast.parse(Path(module.__file__).read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def test_the_entry_view_and_page_service_build_no_html_and_stay_short():
    for module in (views, entry_page):
        source = Path(module.__file__).read_text()
        assert "mark_safe" not in source and "format_html" not in source, (
            f"{module.__name__}: put markup in a template (records/templates/records/), not in Python"
        )
        assert "<a " not in source and "<fieldset" not in source, module.__name__
        for function in _functions(module):
            length = function.end_lineno - function.lineno + 1
            assert length <= 80, f"{module.__name__}.{function.name} is {length} lines: split it"
    for function in _functions(entry):  # the compiled form's HTML is built here, in short steps
        length = function.end_lineno - function.lineno + 1
        assert length <= 80, f"entry.{function.name} is {length} lines: split it"
    view = next(f for f in _functions(views) if f.name == "entry_page")
    assert view.end_lineno - view.lineno + 1 <= 20, "entry_page: access helper, one page service call, render"
