"""Each kind of data quality rule on its own, over a form compiled by hand (no database):
the findings are written out as expected, not computed by the checks."""

from capture.definitions.expressions import parse
from capture.monitoring.rules import CustomRule, Finding, FormChecks
from capture.records.compiled import CompiledForm, FieldRule, Logic


def rule(name, datatype="text", *, codes=None, multiple=False, required=False, lo="", hi="", places=None):
    return FieldRule(
        name=name,
        label=name.title(),
        datatype=datatype,
        codes=codes or {},
        multiple=multiple,
        required=required,
        max_length=None,
        min_value=lo,
        max_value=hi,
        decimal_places=places,
    )


def form(*rules, logic=(), annotations=None, repeating=None):
    annotations = annotations or {}
    return CompiledForm(
        form_id=1,
        ref="t@1",
        rules={r.name: r for r in rules},
        elements={},
        items=[{"name": r.name, "annotation": annotations.get(r.name)} for r in rules],
        repeating=repeating or {},
        logic=list(logic),
        events_read=frozenset(),
    )


def run(compiled, data, custom=(), missing=("UNK",), **kw):
    return FormChecks(compiled, custom, missing).run(data, **kw)


def test_required_blank_is_found_unless_its_branching_hides_it():
    c = form(
        rule("smoker", codes={"0": "No", "1": "Yes"}),
        rule("packs", "integer", required=True),
        logic=[Logic("packs", None, parse("[smoker] = '1'"), None)],
    )
    assert run(c, {"smoker": "1"}) == [Finding("required", "packs", "Packs: required but blank")]
    assert run(c, {"smoker": "0"}) == []


def test_a_value_outside_its_range_is_found_and_a_missing_code_is_not():
    c = form(rule("age", "integer", lo="0", hi="120"), rule("visit", "date", lo="2020-01-01"))
    assert run(c, {"age": 130, "visit": "2019-12-31"}) == [
        Finding("range", "age", "Age: above the maximum 120"),
        Finding("range", "visit", "Visit: below the minimum 2020-01-01"),
    ]
    assert run(c, {"age": "UNK", "visit": "2021-05-01"}) == []


def test_an_invalid_code_is_found_in_single_and_checkbox_fields():
    c = form(rule("sex", codes={"1": "F", "2": "M"}), rule("sym", codes={"a": "A", "b": "B"}, multiple=True))
    assert run(c, {"sex": "3", "sym": ["a", "z"]}) == [
        Finding("code", "sex", "Sex: not one of its codes"),
        Finding("code", "sym", "Sym: not one of its codes"),
    ]
    assert run(c, {"sex": "UNK", "sym": ["b"]}) == []


def test_a_hidden_field_holding_a_value_is_found():
    c = form(
        rule("smoker", codes={"0": "No", "1": "Yes"}),
        rule("packs", "integer"),
        logic=[Logic("packs", None, parse("[smoker] = '1'"), None)],
    )
    assert run(c, {"smoker": "0", "packs": 20}) == [
        Finding("hidden", "packs", "Packs: hidden by its branching but holds a value")
    ]
    assert run(c, {"smoker": "1", "packs": 20}) == []


def test_a_calculation_that_disagrees_with_its_stored_value_is_found():
    c = form(
        rule("kg", "decimal"),
        rule("m", "decimal"),
        rule("bmi", "decimal", places=1),
        logic=[Logic("bmi", None, None, parse("[kg] / ([m] * [m])"))],
    )
    assert run(c, {"kg": 80, "m": 2, "bmi": 20}) == []
    assert run(c, {"kg": 90, "m": 2, "bmi": 20}) == [
        Finding("calculation", "bmi", "Bmi: the stored value is not what its calculation gives")
    ]


def test_a_missing_code_in_a_field_marked_nomissing_is_found():
    c = form(rule("consent", "date"), rule("note"), annotations={"consent": "@NOMISSING"})
    assert run(c, {"consent": "UNK", "note": "UNK"}) == [
        Finding("missing_code", "consent", "Consent: a missing-data code is not allowed here")
    ]


def test_a_custom_rule_finds_what_its_expression_says_across_the_event():
    c = form(rule("visit_date", "date"))
    before = CustomRule.of(
        "visit_before_consent", "Visit before consent", "[visit_date] < [consent_date]", "visit_date"
    )
    found = run(c, {"visit_date": "2024-01-01"}, [before], same_event={"consent_date": "2024-02-01"})
    assert found == [Finding("rule:visit_before_consent", "visit_date", "Visit before consent")]
    assert run(c, {"visit_date": "2024-03-01"}, [before], same_event={"consent_date": "2024-02-01"}) == []


def test_a_custom_rule_reads_another_event():
    c = form(rule("weight", "decimal"))
    lost = CustomRule.of("lost_weight", "Lost over 10 kg", "[baseline][weight] - [weight] > 10", "weight")
    found = run(c, {"weight": 55}, [lost], events={"baseline": {"weight": 70}})
    assert found == [Finding("rule:lost_weight", "weight", "Lost over 10 kg")]


def test_checks_reach_rows_of_a_repeating_group():
    c = form(
        rule("diam", "decimal", lo="0", hi="300"),
        repeating={"lesions": {"group": "lesions", "items": [{"name": "diam"}]}},
    )
    assert run(c, {"lesions": [{"diam": 10}, {"diam": 400}]}) == [
        Finding("range", "lesions[2].diam", "Diam: above the maximum 300")
    ]


# One FormChecks runs over every record of a study and remembers what it has seen (values found
# fine, expressions' outcomes by their inputs): a value seen before must give what it gave then,
# and a different value (of another type, or in another row) must be checked afresh.


def test_checks_run_again_on_the_same_values_find_the_same_things():
    c = form(
        rule("sex", codes={"1": "F", "2": "M"}),
        rule("sym", codes={"a": "A", "b": "B"}, multiple=True),
        rule("age", "integer", lo="0", hi="120"),
        rule("consent", "date"),
        annotations={"consent": "@NOMISSING"},
    )
    checks = FormChecks(c, (), ("UNK",))
    fine = {"sex": "1", "sym": ["a", "b"], "age": 50, "consent": "2024-01-01"}
    wrong = {"sex": "3", "sym": ["a", "z"], "age": 130, "consent": "UNK"}
    expected_wrong = [
        Finding("code", "sex", "Sex: not one of its codes"),
        Finding("code", "sym", "Sym: not one of its codes"),
        Finding("range", "age", "Age: above the maximum 120"),
        Finding("missing_code", "consent", "Consent: a missing-data code is not allowed here"),
    ]
    assert checks.run(fine) == []
    assert checks.run(wrong) == expected_wrong
    assert checks.run(fine) == []
    assert checks.run(wrong) == expected_wrong
    assert checks.run({"sex": "", "sym": [], "age": "UNK"}) == []


def test_a_value_found_fine_does_not_pass_an_equal_value_of_another_type():
    # 1 == True in Python, but the code "1" is str(1), not str(True).
    c = form(rule("flag", codes={"1": "Yes"}), rule("sym", codes={"1": "One"}, multiple=True))
    checks = FormChecks(c, (), ())
    assert checks.run({"flag": 1, "sym": [1]}) == []
    assert checks.run({"flag": True, "sym": [True]}) == [
        Finding("code", "flag", "Flag: not one of its codes"),
        Finding("code", "sym", "Sym: not one of its codes"),
    ]


def test_a_custom_rule_tells_equal_values_of_other_types_apart():
    c = form(rule("x"))
    ticked = CustomRule.of("ticked", "Ticked", "[x(1)] = '1'", "x")
    checks = FormChecks(c, [ticked], ())
    assert checks.run({"x": 1}) == [Finding("rule:ticked", "x", "Ticked")]
    assert checks.run({"x": True}) == []


def test_a_calculation_over_a_groups_rows_is_checked_on_each_records_rows():
    c = form(
        rule("diam", "decimal"),
        rule("total", "decimal"),
        logic=[Logic("total", None, None, parse("sum([diam])"))],
        repeating={"lesions": {"group": "lesions", "items": [{"name": "diam"}]}},
    )
    checks = FormChecks(c, (), ())
    assert checks.run({"lesions": [{"diam": 10}], "total": 10}) == []
    assert checks.run({"lesions": [{"diam": 20}], "total": 10}) == [
        Finding("calculation", "total", "Total: the stored value is not what its calculation gives")
    ]


def test_a_custom_rule_reads_the_records_own_value_over_its_events():
    c = form(rule("weight", "decimal"))
    heavy = CustomRule.of("heavy", "Over 100 kg", "[weight] > 100", "weight")
    checks = FormChecks(c, [heavy], ())
    assert checks.run({"weight": 50}, same_event={"weight": 150}) == []
    assert checks.run({}, same_event={"weight": 150}) == [Finding("rule:heavy", "weight", "Over 100 kg")]
    assert checks.run({"weight": 150}, same_event={"weight": 50}) == [
        Finding("rule:heavy", "weight", "Over 100 kg")
    ]


def test_a_custom_rule_reading_a_groups_rows_is_evaluated_on_each_record():
    # The rows are dicts, which no memo can key: the rule is evaluated, not skipped as an error.
    c = form(
        rule("diam", "decimal"), repeating={"lesions": {"group": "lesions", "items": [{"name": "diam"}]}}
    )
    any_rows = CustomRule.of("rows", "Has lesion rows", "[lesions] <> ''", "")
    checks = FormChecks(c, [any_rows], ())
    assert checks.run({"lesions": [{"diam": 10}]}) == [Finding("rule:rows", "", "Has lesion rows")]
    assert checks.run({}) == []
