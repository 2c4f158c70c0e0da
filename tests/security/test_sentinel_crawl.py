"""No identifier, DICOM free text or real date reaches a de-identified reader, by any path.

The study of tests/security/sentinel_world.py holds unique sentinel values (medical record
numbers, dates of birth, DICOM descriptions, real enrolment/visit/scan dates and timestamps).
As each de-identified persona (statistician, monitor) this crawl fetches:
- every GET route of the URL resolver, with every real object id (subjects, records, fields,
  queries, jobs, scans...), and the query strings that choose what a page shows;
- every REST endpoint under /api/v1/ (they are routes too), following pagination;
- every REDCap API content type in every format (and the record export's shapes);
- every export layout in every format, through the export service and through the job's
  download, opening the files (CSV, XLSX, Parquet, Stata, SPSS, SAS, ODM, codebook, manifest);
and asserts that no sentinel appears in any answer or file. Every leak is listed, not the first.

A route whose URL arguments the crawl cannot fill fails `test_the_crawl_can_fill_every_route`:
teach `FILLERS` about it, so no page escapes the crawl. The database engine is whatever the
suite runs on (SQLite locally, PostgreSQL too in CI); nothing here depends on it.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pyreadstat
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from capture.accounts.system import SYSTEM
from capture.api import tokens
from capture.api.redcap import views as redcap_views
from capture.api.redcap.project import RECORD_ID
from capture.exports.services import export_dataset, request_export
from capture.exports.spec import FORMATS, LAYOUTS, ExportSpec
from capture.jobs import services as jobs
from capture.jobs.models import Job
from capture.records.compiled import compiled
from tests.security.role_table import ROLE_TABLE
from tests.security.sentinel_world import DOB_A, PERSONAS, SCAN_A, STAMP, Sentinels, build_world

# Every role of the README's table without identifiers is crawled (sentinel_world grants each to a
# persona of the same name): a new de-identified role is crawled without touching this file.
DEIDENTIFIED = sorted(role for role, (_, may) in ROLE_TABLE.items() if "view_identifiers" not in may)
NO_UUID = "00000000-0000-4000-8000-000000000000"  # names no upload
# definitions:export's <fmt>: the formats capture/definitions/views.py `export` writes.
DEFINITION_FORMATS = ["redcap", "odm", "arms", "events", "mapping"]
# Content types the REDCap endpoint answers besides capture/api/redcap/views.py _EXPORTS.
REDCAP_CONTENT = {"version", "record"}
REDCAP_FORMATS = ["json", "csv", "xml"]


# ---------------------------------------------------------------------------- finding leaks


@dataclass
class Leaks:
    """Every (where, sentinel) found, for one assertion message that lists them all."""

    sentinels: Sentinels
    found: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    answers: int = 0
    crashed: list[str] = field(default_factory=list)  # 5xx: a page the crawl could not check

    def text(self, where: str, text: str) -> None:
        for label, match in self.sentinels.find(html.unescape(text)):
            self.found[where].add(f"{label} «{match}»")

    def cells(self, where: str, values) -> None:
        """Values of a typed file: dates and text searched as text, numbers as day counts too."""
        texts = []
        for value in values:
            if hasattr(value, "item") and not isinstance(value, str | bytes):
                value = value.item()  # numpy scalar -> Python
            label = self.sentinels.find_number(value)
            if label is not None:
                self.found[where].add(f"{label} «{value!r}»")
            elif isinstance(value, dt.datetime | dt.date):
                texts.append(value.isoformat())
            elif value is not None and not isinstance(value, int | float):
                texts.append(str(value))
        self.text(where, "\n".join(texts))

    def data(self, where: str, name: str, data: bytes) -> None:
        """Open a file the way its reader would and search what it holds."""
        self.answers += 1
        lower = name.lower()
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as bundle:
                members = bundle.namelist()
                if "xl/workbook.xml" in members or lower.endswith(".xlsx"):
                    self._xlsx(where, data, bundle)
                    return
                for member in members:
                    self.data(f"{where} » {member}", member, bundle.read(member))
            return
        if lower.endswith(".parquet") or data[:4] == b"PAR1":
            table = pq.read_table(io.BytesIO(data))
            self.text(f"{where} (schema)", str(table.schema) + str(table.schema.metadata or ""))
            for column in table.columns:
                self.cells(where, column.to_pylist())
            return
        readers = {".dta": pyreadstat.read_dta, ".sav": pyreadstat.read_sav, ".xpt": pyreadstat.read_xport}
        suffix = Path(lower).suffix
        if suffix in readers:
            self._readstat(where, readers[suffix], suffix, data)
            return
        self.text(where, data.decode("utf-8-sig", errors="replace"))

    def _xlsx(self, where: str, data: bytes, bundle: zipfile.ZipFile) -> None:
        for member in bundle.namelist():  # shared strings, sheet names, comments, properties
            if member.endswith((".xml", ".rels")):
                self.text(f"{where} » {member}", bundle.read(member).decode("utf-8", errors="replace"))
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        try:
            for sheet in workbook.worksheets:
                for row in sheet.iter_rows(values_only=True):
                    self.cells(f"{where} » sheet {sheet.title}", row)
        finally:
            workbook.close()

    def _readstat(self, where: str, reader, suffix: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            handle.write(data)
            handle.flush()
            frame, meta = reader(handle.name)
        self.cells(where, frame.to_numpy().ravel().tolist())
        labels = [
            meta.file_label,
            *meta.column_names,
            *meta.column_labels,
            *(getattr(meta, "notes", []) or []),
        ]
        for mapping in (meta.variable_value_labels or {}).values():
            labels += [str(k) for k in mapping] + list(mapping.values())
        self.text(f"{where} (labels)", " | ".join(str(x) for x in labels if x is not None))
        self.text(f"{where} (raw bytes)", data.decode("latin-1"))

    def response(self, where: str, response) -> None:
        if response.status_code >= 500:
            self.crashed.append(where)
        for header in ("Content-Disposition", "Location"):
            if response.has_header(header):
                self.text(f"{where} [{header}]", response[header])
        # The test client closes a streamed response when its content has been read, with Django's
        # close_old_connections disconnected; calling response.close() here would fire it and, inside
        # the module's transaction, close the PostgreSQL connection.
        body = b"".join(response.streaming_content) if response.streaming else response.content
        name = ""
        if response.has_header("Content-Disposition"):
            name = response["Content-Disposition"].rpartition("filename=")[2].strip('"')
        self.data(where, name, body)

    def report(self, who: str) -> str:
        lines = []
        if self.found:
            lines.append(f"{len(self.found)} answers leak to the {who} (of {self.answers} read). In short:")
            summary: dict[str, set[str]] = defaultdict(set)
            for where, hits in self.found.items():
                for hit in hits:
                    summary[_source(where)].add(
                        re.sub(r" of (subject )?[A-Z](-\d+)?\b| \(\d{4}-\d\d-\d\d\)| «.*»", "", hit)
                    )
            lines += [f"  {source}: {'; '.join(sorted(kinds))}" for source, kinds in sorted(summary.items())]
            lines.append("Every answer and what it leaks:")
            for where in sorted(self.found):
                lines.append(f"  {where}")
                lines += [f"      {hit}" for hit in sorted(self.found[where])]
            lines.append(
                "Every value shown to a de-identified role must go through capture/studies/disclosure.py "
                "(identifier items masked or left out, dates shifted, subject-less timestamps withheld, "
                "DICOM free text withheld)."
            )
        if self.crashed:
            lines.append(
                f"{len(self.crashed)} answers were server errors, so the crawl could not check them:"
            )
            lines += [f"  {where}" for where in sorted(self.crashed)]
        return "\n".join(lines)


def _source(where: str) -> str:
    """What produced an answer, for the summary: a route name, a REDCap content, an export."""
    if match := re.search(r"\(([\w-]+:[\w-]+)\)", where):
        return match.group(1)
    if match := re.search(r"content=(\w+)", where):
        return f"REDCap API content={match.group(1)}"
    return " ".join(where.split()[:3])


# ---------------------------------------------------------------------------- the routes


def _walk(patterns, ns=None, params=frozenset()):
    for p in patterns:
        names = params | frozenset(p.pattern.regex.groupindex)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, p.namespace or ns, names)
        elif isinstance(p, URLPattern) and p.name:
            yield (f"{ns}:{p.name}" if ns else p.name), names


def app_routes() -> dict[str, frozenset[str]]:
    """Route name -> the names of its URL arguments. Django's admin is staff-only and Django's."""
    return {
        name: params for name, params in _walk(get_resolver().url_patterns) if not name.startswith("admin:")
    }


def _fields(record) -> list[str]:
    """The fields of a record whose pages can show a secret: identifier items, dates, repeating
    groups (and one ordinary field, for the page's frame). Every field would triple the crawl."""
    c = compiled(record.form)
    identifiers = {i["name"] for i in c.items if c.elements[i["element"]].identifier}
    chosen = {n for n, rule in c.rules.items() if n in identifiers or rule.datatype in ("date", "datetime")}
    ordinary = sorted(set(c.rules) - chosen)
    return sorted(chosen | set(c.repeating) | set(ordinary[:1]))


def _one_record_per_form(records) -> list:
    """A record per subject × form: field-level pages (history, queries by field) of the others
    add nothing but time."""
    seen: dict[tuple, object] = {}
    for r in records:
        seen.setdefault((r.subject_id, r.form_name), r)
    return list(seen.values())


# Routes with a <pk>: which objects it names.
PKS = {
    "records:query": lambda w: [q.pk for q in w.queries],
    "imaging:assign": lambda w: [s.pk for s in w.imaging_studies],
    "measurements:assign": lambda w: list(w.study.measurement_reports.values_list("pk", flat=True)),
    "api:token_revoke": lambda w: list(w.extra["api_tokens"]),
    "api:redcap_token_revoke": lambda w: list(w.extra["redcap_tokens"]),
    "administration:member": lambda w: list(w.study.memberships.values_list("pk", flat=True)),
    "administration:site": lambda w: list(w.study.sites.values_list("pk", flat=True)),
    # The world's saved report holds every field of the study (identifiers and dates among them).
    **{f"reports:{page}": lambda w: [w.extra["report"].pk] for page in ("view", "csv", "edit", "delete")},
}


def _record_kwargs(w, records, **extra) -> list[dict]:
    return [
        {
            "slug": w.study.slug,
            "subject_id": r.subject.subject_id,
            "event": r.event.name,
            "form": r.form_name,
            "instance": r.instance,
        }
        | extra
        for r in records
    ]


def _elements(w) -> list:
    """Definitions, not data: every identifier element, and one more element per form."""
    found: dict = {}
    for record in w.records:
        elements = compiled(record.form).elements.values()
        found |= dict.fromkeys(e for e in elements if e.identifier)
        found[min(elements, key=lambda e: e.public_id)] = None
    return list(found)


def _by_record(w, name) -> list[dict]:
    return _record_kwargs(w, w.records)


def _by_slot(w, name) -> list[dict]:
    keys = [{k: v for k, v in kw.items() if k != "instance"} for kw in _record_kwargs(w, w.records)]
    return [dict(t) for t in dict.fromkeys(tuple(k.items()) for k in keys)]


def _by_field(w, name) -> list[dict]:
    return [
        kw | {"field": f}
        for r in _one_record_per_form(w.records)
        for kw in _record_kwargs(w, [r])
        for f in _fields(r)
    ]


# URL arguments -> how to fill them with every real object (w: the world, name: the route).
FILLERS = {
    frozenset(): lambda w, name: [{}],
    frozenset({"slug"}): lambda w, name: [{"slug": w.study.slug}],
    frozenset({"slug", "subject_id"}): lambda w, name: [
        {"slug": w.study.slug, "subject_id": s.subject_id} for s in w.subjects.values()
    ],
    frozenset({"slug", "subject_id", "event", "form"}): _by_slot,
    frozenset({"slug", "subject_id", "event", "form", "instance"}): _by_record,
    frozenset({"slug", "subject_id", "event", "form", "instance", "field"}): _by_field,
    frozenset({"job_id"}): lambda w, name: [{"job_id": j.pk} for j in w.extra["jobs"]],
    frozenset({"slug", "job_id"}): lambda w, name: [
        {"slug": w.study.slug, "job_id": j.pk} for j in w.extra["jobs"]
    ],
    frozenset({"pk"}): lambda w, name: [{"pk": pk} for pk in PKS[name](w)],
    frozenset({"slug", "pk"}): lambda w, name: [{"slug": w.study.slug, "pk": pk} for pk in PKS[name](w)],
    frozenset({"slug", "upload_id"}): lambda w, name: [{"slug": w.study.slug, "upload_id": NO_UUID}],
    # The shipped forms have no file field: the download page is crawled for a file that is not there
    # (tests/files/test_entry_and_download.py checks who may download a real one).
    frozenset({"slug", "file_id"}): lambda w, name: [{"slug": w.study.slug, "file_id": NO_UUID}],
    frozenset({"slug", "fmt"}): lambda w, name: [
        {"slug": w.study.slug, "fmt": f} for f in DEFINITION_FORMATS
    ],
    frozenset({"name", "version"}): lambda w, name: [
        {"name": f.name, "version": f.version} for f in dict.fromkeys(r.form for r in w.records)
    ],
    frozenset({"uidb64", "token"}): lambda w, name: [{"uidb64": "MQ", "token": "no-such-token"}],
    frozenset({"public_id", "version"}): lambda w, name: [
        {"public_id": e.public_id, "version": e.version} for e in _elements(w)
    ],
}


def fillable(name: str, params: frozenset[str]) -> bool:
    return params in FILLERS and ("pk" not in params or name in PKS)


def _query_strings(name: str, kwargs: dict, w) -> list[str]:
    """Query strings that change what a page shows, besides the bare URL."""
    if name in ("records:query_new", "records:record_queries"):
        key = (kwargs["subject_id"], kwargs["event"], kwargs["form"], kwargs["instance"])
        for record in _one_record_per_form(w.records):
            if (record.subject.subject_id, record.event.name, record.form_name, record.instance) == key:
                return [f"?field={f}" for f in _fields(record)]
        return []
    if name == "records:queries":
        return ["?status=all", "?status=answered", "?status=closed", "?site=A"]
    if name in ("administration:audit", "administration:audit_csv"):
        return [f"?subject={s.subject_id}" for s in w.subjects.values()] + [
            f"?site={site.code}" for site in w.study.sites.all()
        ]
    if name == "web:dashboard":
        return [f"?arm={arm.name}" for arm in w.study.schedule.arms.all()] + ["?q=A"]
    return []


SKIP = {
    "imaging:quarantine_decide": "POST only: a decision that shows nothing; its page, imaging:quarantine, is crawled",
    "api:redcap": "POST only: crawled content type by content type below",
    "logout": "ends the session the crawl runs in",
    # Monitoring's POST-only actions show nothing (they redirect); their pages are crawled.
    "monitoring:verify": "POST only: the entry page shows the mark",
    "monitoring:query_open": "POST only: the entry page shows the query",
    "monitoring:query_act": "POST only: the entry page and records:query show the thread",
    "monitoring:exclude": "POST only: monitoring:data_quality shows the finding",
    "monitoring:to_query": "POST only: monitoring:data_quality shows the finding",
    "response:designate": "POST only: response:targets shows the designation",
    "response:assess": "POST only: response:targets shows the lesion statuses",
}


def crawl_routes(client, w, leaks: Leaks) -> None:
    for name, params in sorted(app_routes().items()):
        if name in SKIP:
            continue
        for kwargs in FILLERS[params](w, name) if fillable(name, params) else []:
            url = reverse(name, kwargs=kwargs)
            for query in ["", *_query_strings(name, kwargs, w)]:
                target = url + query
                while target:
                    response = client.get(target)
                    leaks.response(f"GET {target} ({name}) → {response.status_code}", response)
                    target = _next_page(response)


def _next_page(response) -> str:
    if response.status_code != 200 or not response.get("Content-Type", "").startswith("application/json"):
        return ""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    following = body.get("next") if isinstance(body, dict) else None
    return following.replace("http://testserver", "") if isinstance(following, str) else ""


def crawl_redcap(client, token: str, leaks: Leaks) -> None:
    contents = sorted(set(redcap_views._EXPORTS) | REDCAP_CONTENT)
    for content in contents:
        for fmt in REDCAP_FORMATS:
            shapes = [{}]
            if content == "record":
                shapes = [
                    {"type": kind, "rawOrLabel": raw, "exportDataAccessGroups": "true"}
                    for kind in ("flat", "eav")
                    for raw in ("raw", "label")
                ] + [{"rawOrLabelHeaders": "label", "exportCheckboxLabel": "true", "rawOrLabel": "label"}]
            for shape in shapes:
                params = {"token": token, "content": content, "format": fmt, **shape}
                response = client.post("/redcap/api/", params)
                described = "&".join(f"{k}={v}" for k, v in params.items() if k != "token")
                leaks.response(f"POST /redcap/api/ {described} → {response.status_code}", response)


# Export variants: every layout with the defaults, and the other options on one layout each.
EXPORT_VARIANTS = [
    *[(layout, {"measurements": True} if layout == "long" else {}) for layout in LAYOUTS],
    ("wide", {"labels": True, "checkboxes": "combined", "date_mode": "offset"}),
    ("tidy", {"rehash_ids": True, "drop_free_text": True, "labels": True}),
]


def run_exports(user, w, leaks: Leaks, output: Path) -> list[str]:
    """Write and open every variant in every format, one format per export so that a writer that
    fails is named and the others are still checked; returns the failures (a format that cannot
    be written cannot be checked: the crawl says so rather than skip it)."""
    failed = []
    for layout, options in EXPORT_VARIANTS:
        for fmt in FORMATS:
            described = f"export {layout} {fmt} {options or 'defaults'}"
            try:
                _export(
                    user, w, ExportSpec(layout=layout, formats=[fmt], **options), leaks, described, output
                )
            except Exception as exc:  # noqa: BLE001 - report it with the others
                failed.append(f"{described}: {type(exc).__name__}: {exc}")
    return failed


def _export(user, w, spec: ExportSpec, leaks: Leaks, described: str, output: Path) -> None:
    result = export_dataset(actor=user, study=w.study, spec=spec, output_dir=output)
    leaks.data(f"{described} ({result.path.name})", result.path.name, result.path.read_bytes())


# ---------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """One seeded world for the module (seeding is most of the time): it lives in a transaction
    rolled back at the end, and each test runs in its own savepoint inside it."""
    tmp = tmp_path_factory.mktemp("sentinel")
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=str(tmp / "media")),
        transaction.atomic(),
    ):
        w = build_world(tmp)
        statistician = w.users["statistician"]
        # An export job (the builder page's path), so the job pages and its download are crawled
        # too; every format is checked by test_no_sentinel_in_any_export_layout_format_or_option.
        job = request_export(
            actor=statistician, study=w.study, spec=ExportSpec(layout="wide", formats=["csv", "xlsx", "odm"])
        )
        jobs.run_job(str(job.pk))  # what the queue does after commit (this transaction never commits)
        job.refresh_from_db()
        assert job.status == Job.SUCCEEDED, (job.status, job.error)
        w.extra = {
            "jobs": [job],
            "api_tokens": {},
            "redcap_tokens": {},
            "redcap_plain": {},
            "report": _every_field_report(w),
        }
        for name, user in w.users.items():
            api, _ = tokens.create_api_token(user=user, name="crawl")
            redcap, plain = tokens.create_redcap_token(user=user, study=w.study)
            w.extra["api_tokens"][api.pk] = name
            w.extra["redcap_tokens"][redcap.pk] = name
            w.extra["redcap_plain"][name] = plain
        yield w
        transaction.set_rollback(True)


def _every_field_report(w):
    """A saved report of every field of the study (its identifiers and dates too), so the report's
    table and CSV are crawled as every de-identified persona."""
    from capture.api.redcap.project import Project
    from capture.reports.models import Report
    from capture.reports.services import save_report

    project = Project(w.study)
    report = Report(study=w.study, name="Everything", fields=sorted(project.fields_by_name))
    return save_report(actor=SYSTEM, report=report)


# ---------------------------------------------------------------------------- the tests


def test_the_crawl_can_fill_every_route():
    unknown = sorted(
        f"{name} <{', '.join(sorted(params))}>"
        for name, params in app_routes().items()
        if name not in SKIP and not fillable(name, params)
    )
    assert not unknown, (
        f"The sentinel crawl does not know how to fill these routes' URL arguments: {unknown}. "
        "Teach FILLERS in tests/security/test_sentinel_crawl.py (and PKS for a <pk>) to give "
        "real ids, so the new page is crawled as every de-identified persona."
    )


def test_the_crawl_runs_as_every_role_without_identifiers():
    assert DEIDENTIFIED, "the README's role table should have roles without view_identifiers"
    missing = [role for role in DEIDENTIFIED if PERSONAS.get(role, ("",))[0] != role]
    assert not missing, (
        f"Roles without identifiers that the sentinel world gives no persona: {missing}. Add "
        "'<role>': ('<role>', []) to PERSONAS in tests/security/sentinel_world.py."
    )


@pytest.mark.parametrize("persona", DEIDENTIFIED)
def test_no_sentinel_reaches_a_deidentified_persona(db, client, world, persona):
    user = world.users[persona]
    leaks = Leaks(world.sentinels)
    client.raise_request_exception = False  # a server error is reported with the leaks, not raised
    client.force_login(user)
    crawl_routes(client, world, leaks)
    crawl_redcap(client, world.extra["redcap_plain"][persona], leaks)
    assert leaks.answers > 500, f"the crawl read only {leaks.answers} answers: is the world seeded?"
    if leaks.found or leaks.crashed:
        pytest.fail(leaks.report(persona), pytrace=False)


def test_no_sentinel_in_any_export_layout_format_or_option(db, world, tmp_path):
    statistician = world.users["statistician"]
    leaks = Leaks(world.sentinels)
    failed = run_exports(statistician, world, leaks, tmp_path / "exports")
    with pytest.raises(PermissionDenied):  # the monitor's role has no export right at all
        export_dataset(
            actor=world.users["monitor"], study=world.study, spec=ExportSpec(), output_dir=tmp_path
        )
    problems = [leaks.report("statistician")] if leaks.found or leaks.crashed else []
    if failed:
        problems.append(
            "These exports failed, so the crawl could not check them (fix the writer, not this test):\n  "
            + "\n  ".join(failed)
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_the_crawl_finds_the_sentinels_where_they_may_be_seen(db, client, world, tmp_path):
    """The control: the same search, as roles that see identifiers, finds each kind of sentinel in
    pages, the REDCap API and every format of an identified export — so a clean crawl is clean
    because nothing leaked, not because the search is blind."""
    admin = world.users["admin"]
    leaks = Leaks(world.sentinels)
    client.force_login(admin)
    a = world.subjects["a"]
    for url in [
        reverse("records:entry", args=[world.study.slug, a.subject_id, "baseline", "demographics", 1]),
        reverse("imaging:list", args=[world.study.slug]),
        reverse("web:subject", args=[world.study.slug, a.subject_id]),
    ]:
        leaks.response(url, client.get(url))
    for fmt in FORMATS:  # one format per export: a writer that fails leaves the others checked
        spec = ExportSpec(formats=[fmt], identified=True, reason="control", date_mode="none")
        try:
            result = export_dataset(
                actor=admin, study=world.study, spec=spec, output_dir=tmp_path / "control"
            )
        except Exception:  # noqa: BLE001, S112 - the export test reports a writer that fails
            continue
        leaks.data(f"identified export {fmt}", result.path.name, result.path.read_bytes())
    found = " ".join(f"{where} {hit}" for where, hits in leaks.found.items() for hit in hits)
    expected = {
        "MRN on the entry page": "medical record number (identifier item) of subject A",
        "real enrolment date on the subject page": f"({world.subjects['a'].enrollment_date.isoformat()})",
        "StudyDescription on the imaging list": "DICOM StudyDescription",
        "scan date on the imaging list": f"({SCAN_A.isoformat()})",
    }
    missing = [what for what, needle in expected.items() if needle not in found]
    # Each reader finds a date of birth in its file (the Stata file only once its writer works).
    for suffix in (".csv", ".xlsx", ".parquet", ".sav", ".xpt", ".xml"):
        if not any(
            suffix in where and "date_of_birth" in " ".join(hits) for where, hits in leaks.found.items()
        ):
            missing.append(f"the date of birth in the {suffix} file")
    assert not missing, f"The sentinel search misses: {missing}. Found: {leaks.report('admin')}"


# ---------------------------------------------------------------------------- filters


IDENTIFIER_PROBES = [
    # (expression that would keep subject A if it ran on raw values, one that keeps nobody)
    ("[date_of_birth] = '1931-02-17'", "[date_of_birth] = '1800-01-01'"),
    ("contains([medical_record_number], '7731')", "contains([medical_record_number], 'no-such')"),
    (
        f"datediff('1900-01-01', [date_of_birth], 'd') = {(DOB_A - dt.date(1900, 1, 1)).days}",
        "datediff('1900-01-01', [date_of_birth], 'd') = 1",
    ),
    (
        "[enrollment_date] = '2019-03-07'",
        "[enrollment_date] = '1800-01-01'",
    ),  # a real date, not an identifier
]


def _cohort_size(user, w, expression: str, output: Path) -> int | str:
    try:
        result = export_dataset(
            actor=user, study=w.study, spec=ExportSpec(formats=["csv"], cohort=expression), output_dir=output
        )
    except (ValidationError, PermissionDenied) as exc:
        return f"refused: {exc}"
    return result.manifest["subjects"]


def _redcap_count(client, token: str, **params) -> int | str:
    response = client.post("/redcap/api/", {"token": token, "content": "record", "format": "json", **params})
    if response.status_code != 200:
        return f"refused: {response.status_code}"
    return len({row[RECORD_ID] for row in response.json()})


def test_a_filter_cannot_tell_identifiers_or_real_dates_to_a_deidentified_persona(
    db, client, world, tmp_path
):
    """A cohort filter, filterLogic or date range answers by what the reader may see: an expression
    over an identifier or a real date must keep the same subjects as one that matches nobody (or
    be refused), else sixteen exports recover a date of birth bit by bit."""
    statistician = world.users["statistician"]
    problems = []
    for hit, miss in IDENTIFIER_PROBES:
        for persona in DEIDENTIFIED:
            token = world.extra["redcap_plain"][persona]
            got = (
                _redcap_count(client, token, filterLogic=hit),
                _redcap_count(client, token, filterLogic=miss),
            )
            if isinstance(got[0], int) and got[0] != got[1]:
                problems.append(
                    f"REDCap filterLogic as {persona}: {hit!r} keeps {got[0]}, {miss!r} keeps {got[1]}"
                )
        got = (
            _cohort_size(statistician, world, hit, tmp_path),
            _cohort_size(statistician, world, miss, tmp_path),
        )
        if isinstance(got[0], int) and got[0] != got[1]:
            problems.append(f"export cohort as statistician: {hit!r} keeps {got[0]}, {miss!r} keeps {got[1]}")
    real_day = STAMP.date().isoformat()
    for persona in DEIDENTIFIED:
        token = world.extra["redcap_plain"][persona]
        got = (
            _redcap_count(
                client, token, dateRangeBegin=f"{real_day} 00:00:00", dateRangeEnd=f"{real_day} 23:59:59"
            ),
            _redcap_count(
                client, token, dateRangeBegin="1999-01-01 00:00:00", dateRangeEnd="1999-01-01 23:59:59"
            ),
        )
        if isinstance(got[0], int) and got[0] != got[1]:
            problems.append(
                f"REDCap dateRangeBegin/End as {persona}: the real day the records were saved ({real_day}) "
                f"keeps {got[0]} records, a day with nothing keeps {got[1]}"
            )
    if problems:
        pytest.fail("Filters answer on raw values:\n  " + "\n  ".join(problems), pytrace=False)
