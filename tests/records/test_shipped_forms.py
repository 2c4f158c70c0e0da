"""Every shipped form renders for data entry and every shipped expression parses and evaluates."""

from django.conf import settings

from capture.accounts.system import SYSTEM
from capture.definitions.expressions import evaluate, parse
from capture.definitions.loader import load_definitions
from capture.definitions.models import FormDefinition
from capture.records import entry
from capture.records.compiled import compiled
from capture.studies.models import DEFAULT_MISSING_CODES


def test_every_shipped_form_renders_with_its_logic(db):
    load_definitions([settings.CAPTURE["DEFINITIONS_DIR"]], actor=SYSTEM)
    forms = list(FormDefinition.objects.all())
    assert len(forms) >= 10
    for form in forms:
        c = compiled(form)
        values, rows = entry.display_values(c, {})
        hidden, _ = entry.visible_state(c, values, rows, events=None, missing=frozenset())
        html, skeleton = entry.render_form(
            c, form.spec, missing=DEFAULT_MISSING_CODES, values=values, rows=rows, hidden=hidden, errors={}
        )
        for item in c.items:
            if not item["repeating"]:
                assert f'id="f-{item["name"]}"' in html, f"{form.ref}: {item['name']} is not on the page"
        assert skeleton.logic_json.startswith("{")
        for logic in c.logic:
            for ast in (logic.branching, logic.calculation):
                if ast is not None:
                    assert ast["t"]


def test_shipped_demographics_calculations_give_the_expected_values():
    assert evaluate("year([date_of_birth])", {"date_of_birth": "1961-07-04"}) == 1961
    age = "rounddown(datediff([date_of_birth], [enrollment_date], 'y'))"
    assert evaluate(age, {"date_of_birth": "1961-07-04", "enrollment_date": "2025-07-03"}) == 63
    assert parse("[anesthesia_agent] <> 'none'")["op"] == "<>"


def test_shipped_pack_years_is_calculated_from_cigarettes_per_day_and_years_smoked(db):
    from capture.records.validation import clean_values

    load_definitions([settings.CAPTURE["DEFINITIONS_DIR"]], actor=SYSTEM)
    form = FormDefinition.objects.filter(name="social_history").order_by("-pk").first()
    values = {"tobacco_smoking_status": "2", "cigarettes_per_day": "15", "years_smoked": "30"}
    clean, errors = clean_values(form, values, missing_codes=set(), complete=False)
    assert errors == {} and clean["pack_years_smoked"] == 22.5  # 15 × 30 ÷ 20
