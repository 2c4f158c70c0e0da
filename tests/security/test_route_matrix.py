"""Every route × every persona × own / other-site / other-study objects.

The routes come from the URL resolver, so a route added without an entry in ROUTES
fails `test_every_route_has_an_entry`. The expected status follows from the entry:
- anonymous: sent to log in (pages) or refused with 401/403 (API);
- a user who may not see the study, or the subject's site: 404, so existence does not leak;
- a user who sees it but lacks the entry's permission: 403;
- otherwise the entry's `ok` status.

Who may see and do what is read from the hand-typed README role table
(tests/security/role_table.py) through the persona table (tests/conftest.py PERSONAS: persona →
role and sites), never from capture.studies.access: the matrix is an independent answer key, so
an extra grant in capture/studies/roles.py (enter_data for the statistician, say) fails here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from capture.accounts.system import SYSTEM
from capture.jobs import services as jobs
from capture.records.services import save_record
from capture.studies import services
from tests.conftest import PERSONAS as MEMBERSHIPS
from tests.security.role_table import permissions_of, sees_all_sites

PERSONAS = [
    "anonymous",
    "admin",
    "pi",
    "data_manager",
    "coordinator_a",
    "coordinator_b",
    "statistician",
    "monitor",
    "outsider",
]

# What an entry's `scope` names: where the object lives, and so who may see it.
#   none: no object;  study: a study;  subject / record: a subject at site A or B of "trial";
#   job: a background job started by the data manager.
TARGETS = {
    "none": ["-"],
    "study": ["own", "other_study"],
    "subject": ["site_a", "site_b", "other_study"],
    "record": ["site_a", "site_b"],
    "job": ["own"],
}


NO_UUID = "00000000-0000-4000-8000-000000000000"  # names no upload or job


@dataclass(frozen=True)
class Route:
    perm: str | None = "view_study_data"  # None: any logged-in user
    scope: str = "study"
    methods: tuple[str, ...] = ("GET",)
    ok: int = 200
    api: bool = False
    public: bool = False  # reachable without logging in
    kwargs: dict = field(default_factory=dict)  # fixed extra URL arguments


ROUTES: dict[str, Route | None] = {
    # None: deliberately outside the matrix, with the reason.
    "login": Route(perm=None, scope="none", public=True),
    "accounts:two_factor": Route(perm=None, scope="none"),
    "logout": Route(perm=None, scope="none", methods=("POST",), ok=302, public=True),
    "web:home": Route(perm=None, scope="none", ok=302, public=True),  # redirects to the study list
    "web:study_list": Route(perm=None, scope="none"),
    "web:dashboard": Route(),
    "web:enroll": Route(perm="enroll_subject"),
    "web:subject": Route(scope="subject"),
    "web:record": Route(scope="record"),
    "jobs:detail": Route(scope="job"),
    "jobs:status": Route(scope="job"),
    "jobs:download": Route(scope="job", ok=404),  # the job has no file: a 404 even for its owner
    "jobs:retry": Route(scope="job", methods=("POST",), ok=302),
    # eCRF entry, locks, signatures, queries (capture/records)
    "records:entry": Route(scope="record"),
    "files:download": Route(ok=404, kwargs={"file_id": NO_UUID}),  # no such file, once access is settled
    "files:record_pdf": Route(scope="record"),
    "files:subject_pdf": Route(scope="subject"),
    "records:history": Route(scope="record", kwargs={"field": "age"}),
    "records:lock": Route(perm="lock_records", scope="record", methods=("POST",), ok=302),
    "records:sign": Route(perm="sign_records", scope="record"),
    "records:remove": Route(perm="enter_data", scope="record", methods=("POST",), ok=302),
    "records:record_queries": Route(scope="record"),
    "records:query_new": Route(perm="verify_data", scope="record"),
    "records:add_instance": Route(
        perm="enter_data", scope="subject", ok=302, kwargs={"event": "week_8", "form": "lesions"}
    ),
    "records:lock_subject": Route(perm="lock_records", scope="subject", methods=("POST",), ok=302),
    "records:queries": Route(),
    "records:query": Route(ok=404, kwargs={"pk": 999999}),  # no such query: 404 once access is settled
    # Monitoring (capture/monitoring): verification, queries from the entry page, data quality.
    "monitoring:verify": Route(perm="verify_data", scope="record", methods=("POST",), ok=302),
    "monitoring:query_open": Route(perm="verify_data", scope="record", methods=("POST",), ok=302),
    "monitoring:query_act": Route(methods=("POST",), ok=404, kwargs={"pk": 999999}),
    "monitoring:data_quality": Route(perm="verify_data"),
    "monitoring:rules": Route(perm="verify_data"),
    "monitoring:exclude": Route(perm="verify_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    "monitoring:to_query": Route(perm="verify_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    # Definition interop (capture/definitions): a new study from a file is for staff, and no persona is.
    "definitions:import_new": Route(perm=None, scope="none", ok=403),
    "definitions:import_redcap_project": Route(perm=None, scope="none", ok=403),
    "definitions:import_for_study": Route(perm="manage_study"),
    "definitions:export": Route(kwargs={"fmt": "redcap"}),
    # Spreadsheet import (capture/imports); unknown uploads and jobs are 404 once the permission holds.
    "imports:index": Route(perm="import_data"),
    "imports:upload": Route(perm="import_data", ok=404, kwargs={"upload_id": NO_UUID}),
    "imports:report": Route(perm="import_data", ok=404, kwargs={"upload_id": NO_UUID}),
    "imports:job": Route(perm="import_data", ok=404, kwargs={"job_id": NO_UUID}),
    # Imaging (capture/imaging)
    "imaging:list": Route(),
    "imaging:queue": Route(perm="import_data"),
    "imaging:ingest": Route(perm="import_data"),
    "imaging:quarantine": Route(perm="import_data"),
    "imaging:quarantine_decide": Route(perm="import_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    "imaging:assign": Route(perm="import_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    "imaging:ingest_job": Route(perm="import_data", scope="job", ok=404, kwargs={"slug": "trial"}),
    "imaging:subject_link": Route(perm="import_data", scope="subject"),
    "imaging:timeline": Route(scope="subject"),
    "imaging:timeline_json": Route(scope="subject"),
    # Target designation (capture/measurements): every reader sees it; data entry roles save it.
    "response:targets": Route(scope="subject"),
    "response:designate": Route(perm="enter_data", scope="subject", methods=("POST",), ok=302),
    "response:assess": Route(
        perm="enter_data", scope="subject", methods=("POST",), ok=400
    ),  # no report named
    # Measurement reports (capture/measurements)
    "measurements:list": Route(),
    "measurements:queue": Route(perm="import_data"),
    "measurements:assign": Route(perm="import_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    # Dataset export (capture/exports)
    "exports:builder": Route(perm="export_deidentified"),
    # Saved reports (capture/reports): anyone who sees the study opens them; data managers define them.
    "reports:list": Route(),
    "reports:new": Route(perm="import_data"),
    "reports:view": Route(ok=404, kwargs={"pk": 999999}),  # no such report, once access is settled
    "reports:csv": Route(ok=404, kwargs={"pk": 999999}),
    "reports:edit": Route(perm="import_data", ok=404, kwargs={"pk": 999999}),
    "reports:delete": Route(perm="import_data", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    # Study administration (capture/administration): reading for the audit roles, changing for managers.
    "administration:members": Route(perm="view_audit"),
    "administration:member_add": Route(perm="manage_study", methods=("POST",)),  # an empty form: 200
    "administration:member": Route(
        perm="manage_study", methods=("GET", "POST"), ok=404, kwargs={"pk": 999999}
    ),
    "administration:sites": Route(perm="view_audit"),
    "administration:site_add": Route(perm="manage_study", methods=("POST",)),
    "administration:site": Route(perm="manage_study", methods=("GET", "POST"), ok=404, kwargs={"pk": 999999}),
    "administration:move_subject": Route(perm="manage_study", scope="subject", methods=("GET", "POST")),
    "administration:settings": Route(perm="manage_study", methods=("GET", "POST")),
    "administration:audit": Route(perm="view_audit"),
    "administration:audit_csv": Route(perm="view_audit"),
    "administration:audit_verify": Route(perm="view_audit", methods=("POST",), ok=302),  # starts a job
    # The invitation link: a bad token is a page saying so, for anyone.
    "administration:set_password": Route(
        perm=None, scope="none", public=True, kwargs={"uidb64": "MQ", "token": "bad-token"}
    ),
    # API token pages: a user manages only their own tokens; someone else's is a 404.
    "api:tokens": Route(perm=None, scope="none"),
    "api:token_create": Route(perm=None, scope="none", methods=("POST",)),
    "api:token_revoke": Route(perm=None, scope="none", methods=("POST",), ok=404, kwargs={"pk": 999999}),
    "api:redcap_token_create": Route(methods=("POST",)),
    "api:redcap_token_revoke": Route(
        perm=None, scope="none", methods=("POST",), ok=404, kwargs={"pk": 999999}
    ),
    # REST API (capture/api): the schema and its docs page are public; data needs a session or token.
    "api:schema": Route(perm=None, scope="none", public=True),
    "api:docs": Route(perm=None, scope="none", public=True),
    "api:me": Route(perm=None, scope="none", api=True),
    "api:study-list": Route(perm=None, scope="none", api=True),
    "api:form-list": Route(perm=None, scope="none", api=True),
    "api:element-list": Route(perm=None, scope="none", api=True),
    "api:form-detail": Route(
        perm=None, scope="none", api=True, kwargs={"name": "demographics", "version": "1.0"}
    ),
    "api:element-detail": Route(
        perm=None, scope="none", api=True, kwargs={"public_id": "capture.test_sex", "version": "1.0"}
    ),
    "api:study-detail": Route(api=True),
    "api:site-list": Route(api=True),
    "api:schedule": Route(api=True),
    "api:subject-list": Route(api=True),
    "api:record-list": Route(api=True),
    "api:audit-list": Route(perm="view_audit", api=True),
    "api:subject-detail": Route(scope="subject", api=True),
    "api:subject-records": Route(scope="subject", api=True),
    "api:measurement-list": Route(api=True),
    "api:subject-measurements": Route(scope="subject", api=True),
    "api:response-list": Route(api=True),
    "api:subject-responses": Route(scope="subject", api=True),
    "api:best-response-list": Route(api=True),
    "api:record-detail": Route(scope="record", api=True),
    "api:job-detail": Route(scope="job", api=True),
    "api:export-create": Route(perm="export_deidentified", methods=("POST",), ok=202, api=True),
    # The REDCap-compatible endpoint takes a token in the POST body, never a session:
    # tests/api/test_redcap_protocol.py and test_pycap_live.py prove its refusals per role and study.
    "api:redcap": None,
}


def _walk(patterns, ns: str | None = None):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, p.namespace or ns)
        elif isinstance(p, URLPattern) and p.name:
            yield f"{ns}:{p.name}" if ns else p.name


def _app_routes() -> set[str]:
    # Django's admin guards itself (staff only) and is tested by Django.
    return {name for name in _walk(get_resolver().url_patterns) if not name.startswith("admin:")}


def test_every_route_has_an_entry():
    missing = sorted(_app_routes() - set(ROUTES))
    assert not missing, (
        f"Routes without an entry in tests/security/test_route_matrix.py ROUTES: {missing}. "
        "Add one saying which permission and object each needs."
    )
    stale = sorted(set(ROUTES) - _app_routes())
    assert not stale, f"ROUTES names routes that no longer exist: {stale}"


@pytest.fixture
def world(personas, subjects, study, other_study):
    """Objects of each kind, own and foreign."""
    admin = personas["admin"]
    other_subject = services.enroll_subject(
        actor=SYSTEM, study=other_study, site=other_study.sites.get(), enrollment_date=dt.date(2025, 1, 1)
    )
    for key in ("a", "b"):
        save_record(
            actor=admin,
            subject=subjects[key],
            event_name="baseline",
            form_name="demographics",
            values={"age": "50"},
        )
    job = jobs.start_job(
        actor=personas["data_manager"],
        study=study,
        kind="test",
        title="A job",
        handler="capture.jobs.services.recover_stale_jobs",
    )
    jobs.Job.objects.filter(pk=job.pk).update(status=jobs.Job.FAILED)
    return {
        "own": {"slug": study.slug},
        "other_study": {"slug": other_study.slug, "subject_id": other_subject.subject_id},
        "site_a": {"slug": study.slug, "subject_id": subjects["a"].subject_id},
        "site_b": {"slug": study.slug, "subject_id": subjects["b"].subject_id},
        "job": job,
        "study": study,
        "other_study_obj": other_study,
    }


def _url(name: str, route: Route, target: str, world) -> str:
    if route.scope == "none":
        return reverse(name, kwargs=route.kwargs or None)
    if route.scope == "job":
        return reverse(name, kwargs={"job_id": world["job"].pk, **route.kwargs})
    base = dict(world[target])
    if route.scope == "study":
        base.pop("subject_id", None)
    if route.scope == "record":
        base.update(event="baseline", form="demographics", instance=1)
    return reverse(name, kwargs={**base, **route.kwargs})


# Where each target lives: the study ("trial" or "other") and, for subjects, the site.
TARGET_STUDY = {"-": "trial", "own": "trial", "site_a": "trial", "site_b": "trial", "job": "trial"}
TARGET_STUDY["other_study"] = "other"
TARGET_SITE = {"site_a": "A", "site_b": "B", "other_study": "X"}
JOB_OWNER = "data_manager"  # `world` starts the job as the data manager


def _membership(persona: str, study: str) -> tuple[str, list[str]] | None:
    """The persona's (role, site codes) in `study`, as tests/conftest.py grants them; None: no role."""
    if persona == "outsider":
        return ("study_admin", []) if study == "other" else None
    return MEMBERSHIPS[persona] if study == "trial" else None


def _expected(route: Route, persona: str, target: str) -> int | tuple:
    if persona == "anonymous":
        if route.public:
            return route.ok
        return (401, 403) if route.api else 302
    if route.scope == "none":
        return route.ok
    membership = _membership(persona, TARGET_STUDY[target])
    if membership is None:
        return 404
    role, sites = membership
    may = permissions_of(role)
    if "view_study_data" not in may:
        return 404
    if route.scope in ("subject", "record") and not sees_all_sites(role) and TARGET_SITE[target] not in sites:
        return 404
    # A job is its starter's; a role that manages the study sees every job of it.
    if route.scope == "job" and persona != JOB_OWNER and "manage_study" not in may:
        return 404
    if route.perm and route.perm not in may:
        return 403
    return route.ok


CASES = [
    (name, persona, target)
    for name, route in ROUTES.items()
    if route is not None
    for persona in PERSONAS
    for target in TARGETS[route.scope]
]


@pytest.mark.parametrize(("name", "persona", "target"), CASES)
def test_route_answers_each_persona_as_its_permissions_say(client, personas, world, name, persona, target):
    route = ROUTES[name]
    user = None if persona == "anonymous" else personas[persona]
    if user is not None:
        client.force_login(user)
    url = _url(name, route, target, world)
    expected = _expected(route, persona, target)
    for method in route.methods:
        response = client.post(url, {}) if method == "POST" else client.get(url)
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert response.status_code in allowed, (
            f"{method} {url} as {persona}: got {response.status_code}, expected {expected}"
        )
        if persona == "anonymous" and 302 in allowed and not route.public:
            assert response.url.startswith(reverse("login")), response.url
