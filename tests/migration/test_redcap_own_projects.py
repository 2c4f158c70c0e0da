"""import_redcap_project on small projects of our own, shaped as REDCap exports them: non-numeric
record ids, two arms, DAGs, comma decimals, upper-case checkbox codes, sparse repeats, a soft range,
survey timestamps; the dry run's cell-by-cell report; the command itself."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from capture.api import tokens
from capture.audit.models import AuditEvent
from capture.audit.services import verify_all
from capture.migration.redcap import migrate, recognise
from capture.records.bulk import FormValidator
from capture.records.models import FormRecord, Query
from capture.studies import access, services
from capture.studies.models import Study, Subject

URL = "/redcap/api/"

DICTIONARY = (
    "field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,"
    "text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,"
    "branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,"
    "field_annotation\n"
    "subj,enrolment,,text,Subject,,,,,,,,,,,,,\n"
    "weight,enrolment,,text,Weight (kg),,,number_1dp_comma_decimal,30,200,,,,,,,,\n"
    'symptoms,enrolment,,checkbox,Symptoms,"A, Ache | B, Burn",,,,,,,,,,,,\n'
    "vdate,visit,,text,Visit date,,,date_ymd,,,,,,,,,,\n"
    "score,visit,,text,Score,,,integer,,,,,,,,,,\n"
)
ARMS = "arm_num,name\n1,Control\n2,Drug\n"
EVENTS = (
    "event_name,arm_num,unique_event_name,custom_event_label,event_id\n"
    "Enrolment,1,enrolment_arm_1,,1\nFollow-up,1,followup_arm_1,,2\nEnrolment,2,enrolment_arm_2,,3\n"
)
MAPPING = (
    "arm_num,unique_event_name,form\n"
    "1,enrolment_arm_1,enrolment\n1,followup_arm_1,visit\n2,enrolment_arm_2,enrolment\n2,enrolment_arm_2,visit\n"
)
DAGS = "data_access_group_name,unique_group_name,data_access_group_id\nSite A,site_a,11\nSite B,site_b,12\n"
REPEATING = "event_name,form_name,custom_form_label\nfollowup_arm_1,visit,\nenrolment_arm_2,visit,\n"
HEAD = (
    "subj,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,redcap_data_access_group,"
    "enrolment_timestamp,weight,symptoms___A,symptoms___b,enrolment_complete,vdate,score,visit_complete\n"
)
RECORDS = HEAD + (
    'a,enrolment_arm_1,,,site_a,2024-01-02 10:00:00,"71,5",1,0,2,,,\n'
    "a,followup_arm_1,visit,1,site_a,,,,,,2024-02-01,3,2\n"
    "a,followup_arm_1,visit,3,site_a,,,,,,2024-04-01,5,1\n"
    'AAAA,enrolment_arm_2,,,site_b,,"250,0",0,1,1,,,\n'
    "AAAA,enrolment_arm_2,visit,2,site_b,,,,,,2024-03-01,4,2\n"
)


def _files(records: str = RECORDS, **extra) -> list[tuple[str, bytes]]:
    files = {
        "dictionary.csv": DICTIONARY,
        "arms.csv": ARMS,
        "events.csv": EVENTS,
        "mapping.csv": MAPPING,
        "dags.csv": DAGS,
        "repeating.csv": REPEATING,
        "records.csv": records,
        **extra,
    }
    return [(name, text.encode()) for name, text in files.items() if text is not None]


def _export(client, user, study) -> list[dict]:
    token = tokens.create_redcap_token(user=user, study=study)[1]
    response = client.post(
        URL, {"token": token, "content": "record", "format": "csv", "exportDataAccessGroups": "true"}
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture
def boss(make_user):
    return make_user("boss", is_staff=True)


def test_each_file_is_recognised_by_its_header():
    kinds = {name: recognise(data) for name, data in _files()}
    assert kinds == {
        "dictionary.csv": "dictionary",
        "arms.csv": "arms",
        "events.csv": "events",
        "mapping.csv": "mapping",
        "dags.csv": "dags",
        "repeating.csv": "repeating",
        "records.csv": "records",
    }
    assert recognise(b'<?xml version="1.0"?><ODM/>') == "xml"


def test_non_numeric_ids_two_arms_dags_comma_decimals_and_sparse_repeats_come_back(client, boss):
    report = migrate(user=boss, slug="acme", files=_files())
    assert report.ok, "\n".join(report.lines())
    study = report.study
    subjects = {s.subject_id: (s.site.code, s.arm.name) for s in Subject.objects.filter(study=study)}
    assert subjects == {"a": ("SITEA", "arm_1"), "AAAA": ("SITEB", "arm_2")}
    assert study.record_id_field == "subj" and study.keeps_source_ids
    assert access.can(boss, "manage_study", study), "the acting user administers the new study"
    rows = _export(client, boss, study)
    assert list(rows[0])[:5] == [
        "subj",
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        "redcap_data_access_group",
    ]
    got = [
        (r["subj"], r["redcap_event_name"], r["redcap_repeat_instrument"], r["redcap_repeat_instance"],
         r["redcap_data_access_group"], r["weight"], r["symptoms___a"], r["symptoms___b"], r["enrolment_complete"],
         r["vdate"], r["score"], r["visit_complete"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        ("AAAA", "enrolment_arm_2", "", "", "site_b", "250,0", "0", "1", "1", "", "", ""),
        ("AAAA", "enrolment_arm_2", "visit", "2", "site_b", "", "", "", "", "2024-03-01", "4", "2"),
        ("a", "enrolment_arm_1", "", "", "site_a", "71,5", "1", "0", "2", "", "", ""),
        ("a", "followup_arm_1", "visit", "1", "site_a", "", "", "", "", "2024-02-01", "3", "2"),
        ("a", "followup_arm_1", "visit", "3", "site_a", "", "", "", "", "2024-04-01", "5", "1"),
    ]


def test_a_value_outside_a_soft_range_is_kept_with_a_warning_and_timestamps_are_reported(boss):
    report = migrate(user=boss, slug="acme", files=_files())
    assert [(w.record, w.column, w.value) for w in report.warnings] == [("AAAA", "weight", "250.0")]
    assert "above the maximum" in report.warnings[0].message
    assert any("enrolment_timestamp" in note and "not imported" in note for note in report.notes)


def test_the_dry_run_reports_every_bad_cell_of_a_row_and_writes_nothing(boss):
    bad = (
        HEAD
        + "a,enrolment_arm_1,,,site_a,,heavy,yes,0,7,,,\na,followup_arm_1,visit,1,site_a,,,,,,2024-13-45,x,2\n"
    )
    report = migrate(user=boss, slug="acme", files=_files(bad), dry_run=True)
    cells = sorted((p.row, p.record, p.column, p.value) for p in report.problems)
    assert cells == [
        (1, "a", "enrolment_complete", "7"),
        (1, "a", "symptoms___A", "yes"),  # the column as the file names it
        (1, "a", "weight", "heavy"),
        (2, "a", "score", "x"),
        (2, "a", "vdate", "2024-13-45"),
    ]
    assert not Study.objects.filter(slug="acme").exists()
    assert not FormRecord.objects.exists()


def test_repeating_instruments_are_inferred_from_the_records_when_no_file_says(client, boss):
    report = migrate(user=boss, slug="acme", files=_files(**{"repeating.csv": None}))
    assert report.ok, "\n".join(report.lines())
    assert any("as the records' redcap_repeat_instrument column says" in note for note in report.notes)
    assert FormRecord.objects.filter(subject__subject_id="a", instance=3).exists()


def test_a_column_the_project_lacks_is_named_once_and_nothing_is_written(boss):
    records = RECORDS.replace("visit_complete\n", "visit_complete,mystery\n", 1)
    report = migrate(user=boss, slug="acme", files=_files(records))
    assert [e for e in report.errors if "mystery" in e] == [
        "column 'mystery' is not a field of the project (nor a REDCap column). Fix: remove it."
    ]
    assert not Study.objects.filter(slug="acme").exists()


def test_the_command_dry_run_lists_problems_and_a_real_run_creates_the_study(tmp_path, boss):
    paths = []
    for name, data in _files():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    out = io.StringIO()
    call_command(
        "import_redcap_project", *paths, "--study", "acme", "--user", "boss", "--dry-run", stdout=out
    )
    assert "dry run: nothing was written" in out.getvalue()
    assert not Study.objects.filter(slug="acme").exists()
    call_command("import_redcap_project", *paths, "--study", "acme", "--user", "boss", stdout=io.StringIO())
    assert Subject.objects.filter(study__slug="acme").count() == 2
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_redcap_project", str(tmp_path / "nope.csv"), "--study", "x", "--user", "boss")


def _import(client, user, study, csv_text: str):
    token = tokens.create_redcap_token(user=user, study=study)[1]
    return client.post(
        URL, {"token": token, "content": "record", "format": "csv", "data": csv_text, "returnFormat": "json"}
    )


def test_a_value_outside_a_soft_range_raises_a_data_query_on_its_field(boss):
    report = migrate(user=boss, slug="acme", files=_files())
    assert report.ok, "\n".join(report.lines())
    record = FormRecord.objects.get(subject__subject_id="AAAA", form_name__endswith="enrolment")
    assert record.data["weight"] == 250.0, "the value is kept"
    query = Query.objects.get()
    assert (query.record, query.field, query.status, query.opened_by) == (record, "weight", "open", boss)
    assert query.messages.get().text == (
        "The imported value 250.0 is above the maximum 200.0 (REDCap's ranges are soft): "
        "please check it against the source."
    )
    assert AuditEvent.objects.filter(action="query.open", object_id=str(query.pk), actor=boss).exists()
    assert verify_all()[1] == [], "the bulk audit events and the query's chain verify"
    assert any(
        line.startswith("warning: row 4, record 'AAAA', column 'weight'") and "a data query asks" in line
        for line in report.lines()
    ), report.lines()


def test_an_api_import_queries_a_changed_out_of_range_value_once_and_only_for_roles_that_raise_queries(
    client, boss, make_user
):
    study = migrate(user=boss, slug="acme", files=_files()).study
    head = "subj,redcap_event_name,weight\n"
    response = _import(client, boss, study, head + "AAAA,enrolment_arm_2,260\n")
    assert response.status_code == 200, response.content
    assert Query.objects.count() == 1, "the open query on weight is not asked twice"
    response = _import(client, boss, study, head + "a,enrolment_arm_1,10\n")
    assert response.status_code == 200, response.content
    assert sorted(Query.objects.values_list("record__subject__subject_id", "field")) == [
        ("AAAA", "weight"),
        ("a", "weight"),
    ]
    coordinator = make_user("coord")
    services.grant_role(
        actor=boss, study=study, user=coordinator, role="coordinator", sites=list(study.sites.all())
    )
    response = _import(client, coordinator, study, head + "a,enrolment_arm_1,5\n")
    assert response.status_code == 200, response.content
    assert (
        FormRecord.objects.get(subject__subject_id="a", form_name__endswith="enrolment").data["weight"] == 5.0
    )
    assert Query.objects.count() == 2, "a coordinator does not raise queries; the value is kept"


def test_dag_unique_names_come_back_as_redcap_wrote_them(client, boss):
    study = migrate(user=boss, slug="acme", files=_files()).study
    assert {r["redcap_data_access_group"] for r in _export(client, boss, study)} == {"site_a", "site_b"}
    token = tokens.create_redcap_token(user=boss, study=study)[1]
    response = client.post(URL, {"token": token, "content": "dag", "format": "csv"})
    assert [
        (r["data_access_group_name"], r["unique_group_name"])
        for r in csv.DictReader(io.StringIO(response.content.decode()))
    ] == [
        ("Site A", "site_a"),
        ("Site B", "site_b"),
    ]


def test_an_import_moves_a_record_to_the_group_its_row_names_when_an_administrator_imports(client, boss):
    study = migrate(user=boss, slug="acme", files=_files()).study
    head = "subj,redcap_event_name,redcap_data_access_group,weight\n"
    response = _import(client, boss, study, head + "a,enrolment_arm_1,SITE_B,70\n")  # any case, as REDCap
    assert response.status_code == 200, response.content
    assert Subject.objects.get(study=study, subject_id="a").site.code == "SITEB"
    moved = AuditEvent.objects.get(action="subject.move", object_label="a")
    assert (moved.before, moved.after) == ({"site": "SITEA"}, {"site": "SITEB"})
    assert moved.reason == "REDCap API import: redcap_data_access_group SITE_B"
    rows = {(r["subj"], r["redcap_event_name"]): r for r in _export(client, boss, study)}
    assert rows[("a", "enrolment_arm_1")]["redcap_data_access_group"] == "site_b"


def test_an_import_that_would_move_a_record_is_refused_for_a_role_that_may_not_move_it(
    client, boss, make_user
):
    study = migrate(user=boss, slug="acme", files=_files()).study
    manager = make_user("manager")
    services.grant_role(actor=boss, study=study, user=manager, role="data_manager")
    head = "subj,redcap_event_name,redcap_data_access_group,weight\n"
    response = _import(client, manager, study, head + "a,enrolment_arm_1,site_b,70\n")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith('row 1: record "a" is in data access group "site_a", not "site_b"; ')
    assert "only a study administrator may move a record" in error
    assert Subject.objects.get(study=study, subject_id="a").site.code == "SITEA"
    assert (
        FormRecord.objects.get(subject__subject_id="a", form_name__endswith="enrolment").data["weight"]
        == 71.5
    )
    response = _import(
        client, manager, study, head + "a,enrolment_arm_1,site_a,70\nzz,enrolment_arm_1,site_b,80\n"
    )
    assert response.status_code == 200, response.content
    assert Subject.objects.get(study=study, subject_id="zz").site.code == "SITEB", (
        "a new record takes its group"
    )


def test_rows_of_one_record_naming_two_groups_are_refused(client, boss):
    study = migrate(user=boss, slug="acme", files=_files()).study
    head = "subj,redcap_event_name,redcap_data_access_group,weight\n"
    response = _import(
        client, boss, study, head + "a,enrolment_arm_1,site_b,70\na,enrolment_arm_1,site_a,70\n"
    )
    assert response.status_code == 400
    assert "give one group per record" in response.json()["error"]
    assert Subject.objects.get(study=study, subject_id="a").site.code == "SITEA", "nothing is kept"


def test_a_dag_name_that_cannot_come_back_as_given_is_named_in_the_report(boss):
    dags = DAGS.replace("Site B,site_b,12", "Site B,sb_2x,12")
    records = RECORDS.replace(",site_b,", ",sb_2x,")
    report = migrate(user=boss, slug="acme", files=_files(records, **{"dags.csv": dags}))
    assert report.ok, "\n".join(report.lines())
    assert (
        "data access group 'sb_2x' is site SB2X (Site B); REDCap surfaces will name it 'sb2x'."
        in report.notes
    )
    assert not any("site_a" in note for note in report.notes if note.startswith("data access group"))


def test_the_importers_remembering_cleaner_gives_what_the_record_validator_gives(boss):
    from capture.api.redcap.project import Project
    from capture.api.redcap.record_import import Importer

    study = migrate(user=boss, slug="acme", files=_files()).study
    importer = Importer(boss, study, Project(study))
    form = importer.project.instruments["enrolment"].form
    validator = FormValidator(form)
    samples = [
        {"weight": "71.5", "symptoms": ["A"]},
        {"weight": "71.5", "symptoms": ["A", "B"]},
        {"weight": "heavy", "symptoms": ["Z"]},
        {"weight": "heavy", "symptoms": []},
        {"weight": "UNK"},
        {"weight": " 72 ", "unknown_item": "x"},
        {"weight": "300"},  # outside the range: the validator's own range (the importer relaxes it later)
    ]
    for complete in (False, True):
        for values in samples:
            got = importer._clean_new(validator, dict(values), complete, None)
            want = validator.clean(dict(values), missing_codes=study.missing_code_set(), complete=complete)
            assert got == want, values
