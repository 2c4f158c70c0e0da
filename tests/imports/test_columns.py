"""The column objects of an import (capture/imports/columns.py): the mapping resolves into one
object per kind of column, each cleans its cell, an item column assigns its value where the record
keeps it, and cleaning a row collects the problem of every bad cell, not only the first."""

import pytest

from capture.imports import readers
from capture.imports.columns import (
    CellProblem,
    CheckboxCodeColumn,
    EventColumn,
    FieldColumn,
    FixedEvent,
    GroupItemColumn,
    IgnoredColumn,
    InstanceColumn,
    RepeatFormColumn,
    StatusColumn,
    resolve_columns,
)
from capture.imports.mapping import Mapping
from capture.imports.structure import StudyForms

HEADERS = ["Patient", "Sex", "Pain", "Fatigue", "Lesion 2 mm", "Done", "Notes", "Visit", "Read", "Form"]


def _table(rows=()):
    return readers.Table(sheet="Data", sheets=["Data"], headers=HEADERS, header_row=1, rows=list(rows))


def _resolve(study, **spec):
    mapping = Mapping.from_spec(
        {
            "subject_column": "Patient",
            "event": "baseline",
            "status_columns": {"demographics": "Done"},
            "columns": [
                {"column": "Sex", "form": "demographics", "item": "sex"},
                {"column": "Pain", "form": "demographics", "item": "symptoms", "code": "pain"},
                {"column": "Fatigue", "form": "demographics", "item": "symptoms", "code": "fatigue"},
                {"column": "Lesion 2 mm", "form": "lesions", "item": "lesion_diameter", "row": 2},
            ],
            **spec,
        }
    )
    return resolve_columns(_table(), mapping, StudyForms.of(study), study.missing_code_set(), study.name)


def test_each_kind_of_column_gets_its_own_object(trial):
    columns, problems = _resolve(trial)
    assert problems == []
    assert (columns.subject.index, columns.subject.letter) == (0, "A")
    assert type(columns.event) is FixedEvent and columns.event.index is None
    assert columns.instance.index is None and columns.repeat_form.index is None
    demographics, lesions = columns.forms["demographics"], columns.forms["lesions"]
    assert [type(c) for c in demographics.items] == [FieldColumn, CheckboxCodeColumn, CheckboxCodeColumn]
    assert [type(c) for c in lesions.items] == [GroupItemColumn]
    assert (demographics.status.letter, lesions.status) == ("F", None)
    assert [(c.header, c.letter) for c in columns.ignored] == [
        ("Notes", "G"),
        ("Visit", "H"),
        ("Read", "I"),
        ("Form", "J"),
    ]
    assert type(columns.ignored[0]) is IgnoredColumn


def test_an_event_column_reads_the_event_of_each_row(trial):
    columns, _ = _resolve(trial, event="", event_column="Visit", event_values={"Week 8": "week_8"})
    assert type(columns.event) is EventColumn and columns.event.letter == "H"
    row = ["A-0001", "", "", "", "", "", "", "Week 8", "", ""]
    assert columns.event.label(row) == ("Week 8", "week_8")


def test_every_problem_of_the_mapping_is_reported_at_once(trial):
    _, problems = _resolve(
        trial,
        instance_column="Instance",
        columns=[
            {"column": "Sex", "form": "vitals", "item": "sex"},
            {"column": "Height", "form": "demographics", "item": "age"},
            {"column": "Fatigue", "form": "demographics", "item": "height"},
        ],
    )
    assert [(p.row, p.column, p.header, p.reason) for p in problems] == [
        (
            None,
            "",
            "",
            "The instance column 'Instance' is not in the sheet (its headers: 'Patient', 'Sex', 'Pain', "
            "'Fatigue', 'Lesion 2 mm', 'Done', 'Notes', 'Visit', 'Read', 'Form').",
        ),
        (None, "B", "Sex", "Column 'Sex' maps to form 'vitals', which this study does not use."),
        (
            None,
            "",
            "",
            "The mapped column 'Height' is not in the sheet (its headers: 'Patient', 'Sex', 'Pain', "
            "'Fatigue', 'Lesion 2 mm', 'Done', 'Notes', 'Visit', 'Read', 'Form').",
        ),
        (
            None,
            "D",
            "Fatigue",
            "Column 'Fatigue' maps to demographics.height, but form 'demographics' has no item 'height' "
            "(its items: initials, sex, age, weight, smoker, symptoms, er_status, pr_status).",
        ),
    ]


def test_cleaning_a_row_collects_every_bad_cell_and_the_status(trial):
    columns, _ = _resolve(trial)
    row = ["A-0001", "X", "maybe", "perhaps", "", "7", "", "", "", ""]
    found = columns.forms["demographics"].clean(row, overwrite=False)
    assert [(p.index, p.value, p.reason) for p in found.problems] == [
        (2, "maybe", "symptoms: 'maybe' is not 1 or 0 (ticked or not)"),
        (3, "perhaps", "symptoms: 'perhaps' is not 1 or 0 (ticked or not)"),
        (5, "7", "The form status is 0, 1 or 2 (REDCap's codes)."),
    ]


def test_item_columns_assign_where_the_record_keeps_the_value(trial):
    columns, _ = _resolve(trial)
    # Sex is checked by the form's validator later ('X' is not a code): cleaning only reads the cell.
    found = columns.forms["demographics"].clean(
        ["A-0001", "2", "1", "yes", 8.0, 2.0, "", "", "", ""], overwrite=False
    )
    assert (found.values, found.status, found.problems) == (
        {"sex": "2", "symptoms": ["fatigue", "pain"]},
        2,
        [],
    )
    lesions = columns.forms["lesions"].clean(["A-0001", "", "", "", 8.0, "", "", "", "", ""], overwrite=False)
    assert lesions.values == {"target_lesions": {2: {"lesion_diameter": "8"}}}
    blank = columns.forms["lesions"].clean([""] * 10, overwrite=True)
    assert (blank.values, blank.blanks, blank.filled) == (
        {},
        {("target_lesions", 2, "lesion_diameter")},
        False,
    )


@pytest.mark.parametrize(
    ("column_index", "repeat_form", "instance", "expected"),
    [
        (None, "", 3, 3),  # no repeat-instrument column: every form at the row's instance
        (9, "", 3, 1),  # a row naming no form fills each form's first instance
        (9, "lesions", 3, 3),  # a row naming this form fills it at its instance
        (9, "demographics", 3, None),  # a row naming another form leaves this one alone
    ],
)
def test_a_repeat_instrument_column_says_which_form_a_row_fills(
    column_index, repeat_form, instance, expected
):
    column = RepeatFormColumn("redcap_repeat_instrument", column_index)
    assert column.instance_for("lesions", repeat_form, instance) == expected


def test_instance_and_status_cells_are_checked():
    instance, status = InstanceColumn("Read", 0), StatusColumn("Done", 0, "demographics")
    assert [instance.clean([v]) for v in ("", None, 2.0, "3")] == [1, 1, 2, 3]
    assert [status.clean([v]) for v in ("", 0.0, "2")] == [None, 0, 2]
    with pytest.raises(CellProblem, match="The instance is a whole number from 1."):
        instance.clean(["0"])
    with pytest.raises(CellProblem, match="The form status is 0, 1 or 2"):
        status.clean([3])
