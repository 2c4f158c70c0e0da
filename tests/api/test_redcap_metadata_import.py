"""REDCap's definition imports on a study in development, driven by the real PyCap against a live
Capture: importMetadata, importArms, importEvents and importInstrumentEventMappings become new
versions of the study's definitions (capture/api/redcap/metadata_import.py); an invalid dictionary
changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from redcap import Project, RedcapError
from redcap import request as redcap_request

from capture.api.tokens import create_redcap_token
from capture.audit.models import AuditEvent
from capture.definitions.converters import redcap
from capture.definitions.services import create_study_from_conversion
from capture.studies import services
from capture.studies.models import Study

pytestmark = pytest.mark.django_db(transaction=True)

# How these imports differ from REDCap's (docs/api.md's coverage table).
METADATA_IMPORT = (
    "in development, on a study made from a REDCap dictionary, before any subject is enrolled; "
    "loads new versions of the forms and schedule"
)
NEW_BY_MAPPING = (
    "a new event or arm comes in through the instrument-event mapping (a Capture event holds a form)"
)

DICTIONARY = b"""field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,field_annotation
record_id,demographics,,text,Record ID,,,,,,,,,,,,,
age,demographics,,text,Age (years),,,integer,0,120,,,,,,,,
weight,visit,,text,Weight (kg),,,number,,,,,,,,,,
"""
ARMS = b"arm_num,name\n1,Arm 1\n"
EVENTS = b"event_name,arm_num,unique_event_name,day_offset,offset_min,offset_max\nBaseline,1,baseline_arm_1,0,0,0\nFollow up,1,follow_up_arm_1,30,0,0\n"
MAPPING = b"arm_num,unique_event_name,form\n1,baseline_arm_1,demographics\n1,baseline_arm_1,visit\n1,follow_up_arm_1,visit\n"


@pytest.fixture
def dev_study(make_user):
    boss = make_user("boss", is_staff=True)
    conversion = redcap.read_dictionary(
        DICTIONARY, project="trial", source="trial.csv", arms=ARMS, events=EVENTS, mapping=MAPPING
    )
    assert not conversion.errors, conversion.errors
    study, _ = create_study_from_conversion(
        actor=boss, conversion=conversion, slug="trial", name="Trial", administrator=boss
    )
    services.add_site(actor=boss, study=study, code="A", name="Site A")
    return study, boss


@pytest.fixture
def proj(live_server, monkeypatch, dev_study):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    study, boss = dev_study
    token = create_redcap_token(user=boss, study=study)[1]
    yield Project(f"{live_server.url}/redcap/api/", token)
    redcap_request._session.close()


def _fields(proj: Project) -> list[str]:
    return [row["field_name"] for row in proj.export_metadata()]


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
@pytest.mark.redcap("metadata", "export")
@pytest.mark.redcap("record", "import")
def test_import_metadata_in_development_adds_a_field_that_takes_data(proj, dev_study):
    study, boss = dev_study
    old_schedule = study.schedule.ref
    metadata = proj.export_metadata()
    new = dict(
        metadata[-1],
        field_name="height",
        field_label="Height (cm)",
        text_validation_type_or_show_slider_number="integer",
    )
    new.update(text_validation_min="", text_validation_max="")
    assert proj.import_metadata(metadata + [new]) == 4
    assert _fields(proj) == ["record_id", "age", "weight", "height"]
    study.refresh_from_db()
    assert study.schedule.ref != old_schedule  # a new schedule version, the old one kept
    assert AuditEvent.objects.filter(study=study, action="study.schedule.change").count() == 1
    subject = services.enroll_subject(
        actor=boss, study=study, site=study.sites.get(code="A"), enrollment_date=dt.date(2026, 1, 5)
    )
    imported = proj.import_records(
        [
            {
                "record_id": subject.subject_id,
                "redcap_event_name": "follow_up_arm_1",
                "weight": "70",
                "height": "172",
            }
        ]
    )
    assert imported == {"count": 1}
    rows = proj.export_records(fields=["record_id", "height"], events=["follow_up_arm_1"])
    assert [r["height"] for r in rows] == ["172"]


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_an_invalid_dictionary_is_refused_naming_the_field_and_changes_nothing(proj, dev_study):
    study, _ = dev_study
    before = study.schedule.ref
    metadata = proj.export_metadata()
    bad = dict(metadata[-1], field_name="pain", field_type="radio", select_choices_or_calculations="")
    with pytest.raises(RedcapError, match="field 'pain'"):
        proj.import_metadata(metadata + [bad])
    study.refresh_from_db()
    assert study.schedule.ref == before
    assert _fields(proj) == ["record_id", "age", "weight"]


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_import_metadata_refuses_a_change_once_subjects_are_enrolled(proj, dev_study):
    study, boss = dev_study
    services.enroll_subject(
        actor=boss, study=study, site=study.sites.get(code="A"), enrollment_date=dt.date(2026, 1, 5)
    )
    metadata = proj.export_metadata()
    with pytest.raises(RedcapError, match="enrolled subjects"):
        proj.import_metadata(metadata[:-1] + [dict(metadata[-1], field_label="Weight in kg")])
    assert [r["field_label"] for r in proj.export_metadata()][-1] == "Weight (kg)"


@pytest.mark.redcap("formEventMapping", "import", differs=NEW_BY_MAPPING)
@pytest.mark.redcap("event", "import", differs=NEW_BY_MAPPING)
@pytest.mark.redcap("arm", "import", differs=NEW_BY_MAPPING)
@pytest.mark.redcap("event", "export")
@pytest.mark.redcap("arm", "export")
def test_arms_events_and_mapping_round_trip_in_development(proj):
    mapping = proj.export_instrument_event_mappings()
    added = mapping + [
        {"arm_num": 2, "unique_event_name": "screening_arm_2", "form": "demographics"},
        {"arm_num": 2, "unique_event_name": "screening_arm_2", "form": "visit"},
    ]
    assert proj.import_instrument_event_mappings(added) == 5
    assert proj.import_arms([{"arm_num": 2, "name": "Control"}]) == 1
    assert (
        proj.import_events(
            [
                {
                    "event_name": "Screening",
                    "arm_num": 2,
                    "unique_event_name": "screening_arm_2",
                    "day_offset": -7,
                }
            ]
        )
        == 1
    )
    assert proj.export_arms() == [{"arm_num": 1, "name": "Arm 1"}, {"arm_num": 2, "name": "Control"}]
    events = {(e["unique_event_name"], e["event_name"], e["days_offset"]) for e in proj.export_events()}
    assert events == {
        ("baseline_arm_1", "Baseline", 0),
        ("follow_up_arm_1", "Follow up", 30),
        ("screening_arm_2", "Screening", -7),
    }
    assert sorted(
        (m["arm_num"], m["unique_event_name"], m["form"]) for m in proj.export_instrument_event_mappings()
    ) == [
        (1, "baseline_arm_1", "demographics"),
        (1, "baseline_arm_1", "visit"),
        (1, "follow_up_arm_1", "visit"),
        (2, "screening_arm_2", "demographics"),
        (2, "screening_arm_2", "visit"),
    ]
    # override=1: the arms are exactly these; arm 2 goes with its event.
    assert proj.import_arms([{"arm_num": 1, "name": "Treatment"}], override=1) == 1
    assert proj.export_arms() == [{"arm_num": 1, "name": "Treatment"}]
    assert {e["unique_event_name"] for e in proj.export_events()} == {"baseline_arm_1", "follow_up_arm_1"}


@pytest.mark.redcap("event", "import", differs=NEW_BY_MAPPING)
def test_a_new_event_without_instruments_is_refused_with_the_way_in(proj):
    with pytest.raises(RedcapError, match="import the instrument-event mapping naming the event first"):
        proj.import_events([{"event_name": "Week 4", "arm_num": 1, "day_offset": 28}])
    assert len(proj.export_events()) == 2


@pytest.mark.redcap("formEventMapping", "import", differs=NEW_BY_MAPPING)
def test_a_mapping_naming_an_unknown_instrument_is_refused(proj):
    with pytest.raises(RedcapError, match="instrument.s. scans are not in the project"):
        proj.import_instrument_event_mappings(
            [{"arm_num": 1, "unique_event_name": "baseline_arm_1", "form": "scans"}]
        )
    assert len(proj.export_instrument_event_mappings()) == 3


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_import_metadata_in_production_is_refused_in_redcaps_words(proj, dev_study):
    study, boss = dev_study
    services.set_study_status(actor=boss, study=study, status=Study.PRODUCTION, reason="go live")
    with pytest.raises(RedcapError, match="because the project is in production"):
        proj.import_metadata(proj.export_metadata())


@pytest.mark.redcap("formEventMapping", "import", differs=NEW_BY_MAPPING)
def test_a_mapping_that_would_drop_an_event_of_enrolled_subjects_is_refused(proj, dev_study):
    study, boss = dev_study
    services.enroll_subject(
        actor=boss, study=study, site=study.sites.get(code="A"), enrollment_date=dt.date(2026, 1, 5)
    )
    before = study.schedule.ref
    with pytest.raises(RedcapError, match="enrolled subjects .*Nothing was changed"):
        proj.import_instrument_event_mappings(
            [{"arm_num": 1, "unique_event_name": "baseline_arm_1", "form": "demographics"}]
        )
    study.refresh_from_db()
    assert study.schedule.ref == before and len(proj.export_instrument_event_mappings()) == 3


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_import_metadata_reads_redcaps_csv_and_answers_the_count_in_csv(proj):
    text = proj.export_metadata(format_type="csv")
    changed = text.replace("Weight (kg)", "Body weight (kg)")
    assert proj.import_metadata(changed, import_format="csv", return_format_type="csv") == "3"
    labels = [row["field_label"] for row in proj.export_metadata()]
    assert labels[1:] == ["Age (years)", "Body weight (kg)"]


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_import_metadata_reads_redcaps_xml(proj):
    text = proj.export_metadata(format_type="xml")
    assert proj.import_metadata(text.replace("Age (years)", "Age at consent"), import_format="xml") == 3
    assert [row["field_label"] for row in proj.export_metadata()][1] == "Age at consent"


@pytest.mark.redcap("metadata", "import", differs=METADATA_IMPORT)
def test_a_member_who_may_not_manage_the_study_cannot_import_metadata(
    live_server, proj, dev_study, make_user
):
    study, boss = dev_study
    manager = make_user("manager")
    services.grant_role(actor=boss, study=study, user=manager, role="data_manager")
    theirs = Project(proj.url, create_redcap_token(user=manager, study=study)[1])
    before = study.schedule.ref
    with pytest.raises(RedcapError, match="does not allow changing its definitions"):
        theirs.import_metadata(proj.export_metadata())
    study.refresh_from_db()
    assert study.schedule.ref == before
