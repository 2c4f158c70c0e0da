"""The production shape of docs/deploy.md on one machine, driven end to end over HTTP (issues 8, 19).

    .venv/bin/python benchmarks/deploy_shape.py          # CI runs it as is (about a minute)
    DATABASE_URL=postgres://… .venv/bin/python benchmarks/deploy_shape.py   # an existing, empty database

What it starts, as the deployment page says, with the production settings (capture.settings.production;
no TLS redirect on 127.0.0.1) and CAPTURE_TASKS=database, laid out as on several hosts:

  PostgreSQL         a throw-away cluster (or DATABASE_URL)
  object storage     moto's S3 server on 127.0.0.1 (CAPTURE_STORAGE=s3://capture-shape/hub), the same
                     django-storages code path as AWS S3, MinIO or Ceph
  research archive   Orthanc with DICOMweb (CAPTURE_DICOMWEB_SERVERS, CAPTURE_RESEARCH_ARCHIVE)
  manage.py          migrate, collectstatic --noinput, load_definitions fixtures/definitions/basic
                     and fixtures/definitions/files (a form with a file field)
  2 app processes    two gunicorn masters on two ports (one sync worker each), stateless: the
                     script alternates between them, the session lives in PostgreSQL
  2 task workers     two `manage.py db_worker` processes

Each of the four processes is its own "host": its own MEDIA_ROOT and temporary folder, so a file
can pass from one to another only through the object store. What goes through it: a data manager
logs in, uploads a CSV on the import page, runs the dry run, commits it; uploads a zip of DICOM
files, which a worker indexes, de-identifies into the store and publishes to the archive by STOW-RS;
then puts a PDF into a form's file field on the data-entry page (of a second study, whose
form has one: fixtures/definitions/files) through one app process and downloads it through the
other; a statistician asks for an export and downloads it once a worker has written it. Each job must be
run by one of the two workers, the records must be in the database with their audit events, the
downloaded zip's files must match the SHA-256 sums of its manifest, the archive must hold the
de-identified instances, the file field's bytes must come back unchanged from an object under
hub/files/, and every host's local media folder must still be empty.
Exits 1 with the reason if anything does not.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from ecrf_bench import free_port, start_postgres  # noqa: E402 - benchmarks/ is put on the path above
from load import write_settings  # noqa: E402 - as above

from tests.imaging import orthanc_server  # noqa: E402 - the repository root is put on the path above
from tests.storage import s3server  # noqa: E402 - as above

# One pseudonym key for the whole run: every process (the seeding one, servers, workers) must use
# the key the database was made under, or Capture refuses to run (studies/pseudonyms.py).
PSEUDONYM_KEY = os.environ.setdefault("CAPTURE_PSEUDONYM_KEY", secrets.token_hex(32))

SLUG = "shape"
DOCS_SLUG = "shape-docs"  # the study whose form has a file field
SUBJECTS = 40
BUCKET = "capture-shape"
PATIENT_ID = "SHAPE-IMG-1"  # the first subject's PatientID in the DICOM files
HOSTS = ("app0", "app1", "worker0", "worker1")
PASSWORD = secrets.token_urlsafe(16)


class Browser:
    """Just enough of a browser: a cookie jar (Secure cookies too: TLS ends at the proxy) and forms."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.turn = 0
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        port = self.ports[self.turn % len(self.ports)]  # alternate between the app processes
        self.turn += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers={"Cookie": cookie, **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            for key, value in response.getheaders():
                if key.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";")[0]
            return response.status, dict(response.getheaders()), data
        finally:
            conn.close()

    def get(self, path: str, expect: int = 200) -> bytes:
        status, headers, data = self.request("GET", path)
        check(status == expect, f"GET {path} answered {status}, expected {expect}: {data[:300]!r}")
        return data

    def form(self, path: str, marker: str) -> tuple[str, dict]:
        """The (action, values) of the form on `path` whose HTML contains `marker`, as a browser would send it."""
        import lxml.html

        page = lxml.html.fromstring(self.get(path))
        for form in page.forms:
            if marker in lxml.html.tostring(form, encoding="unicode"):
                return form.action or path, dict(form.form_values())
        raise SystemExit(f"no form with {marker!r} on {path}")

    def post(self, path: str, fields: dict | list, files: dict | None = None) -> tuple[int, dict, bytes]:
        if files:
            boundary = uuid.uuid4().hex
            parts = []
            items = fields.items() if isinstance(fields, dict) else fields
            for name, value in items:
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                )
            for name, (filename, content) in files.items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: text/csv\r\n\r\n".encode()
                    + content
                    + b"\r\n"
                )
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            content_type = f"multipart/form-data; boundary={boundary}"
        else:
            body = urllib.parse.urlencode(fields, doseq=True).encode()
            content_type = "application/x-www-form-urlencoded"
        return self.request("POST", path, body, {"Content-Type": content_type})

    def log_in(self, username: str) -> None:
        action, fields = self.form("/accounts/login/", 'name="password"')
        status, headers, data = self.post(action, {**fields, "username": username, "password": PASSWORD})
        check(status == 302, f"log-in of {username} answered {status}: {data[:300]!r}")

    def wait_for_job(self, job_path: str, timeout: float = 90) -> dict:
        """Poll the job's status as its page does, until it has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(self.get(job_path.rstrip("/") + "/status/"))
            if status["finished"]:
                return status
            time.sleep(0.3)
        raise SystemExit(f"{job_path} did not finish within {timeout:.0f} s: are the workers running?")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def manage(*args: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True
    )
    check(done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def set_up_study() -> list[str]:
    """Users, a study, sites and subjects (what an administrator does in /admin/ after deploying)."""
    import datetime as dt

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from capture.accounts.system import SYSTEM
    from capture.definitions.models import Schedule
    from capture.imaging import services as imaging
    from capture.studies import services

    study = services.create_study(
        actor=SYSTEM, slug=SLUG, name="Shape", schedule=Schedule.objects.get(name="basic", version="1.0")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="A", name="Site A")
    for username, role in (("dm", "data_manager"), ("stat", "statistician")):
        user = get_user_model().objects.create_user(username, password=PASSWORD)
        services.grant_role(actor=SYSTEM, study=study, user=user, role=role)
    subjects = [
        services.enroll_subject(actor=SYSTEM, study=study, site=site, enrollment_date=dt.date(2025, 1, 6))
        for _ in range(SUBJECTS)
    ]
    imaging.add_identifier(actor=SYSTEM, subject=subjects[0], kind="patient_id", value=PATIENT_ID)
    return [subject.subject_id for subject in subjects]


def set_up_documents_study() -> str:
    """A second study whose form has a file field (the "files" definitions, loaded by manage.py
    load_definitions as any study's forms are), the data manager in it, one subject; its id."""
    import datetime as dt

    from django.contrib.auth import get_user_model

    from capture.accounts.system import SYSTEM
    from capture.definitions.models import Schedule
    from capture.studies import services

    study = services.create_study(
        actor=SYSTEM, slug=DOCS_SLUG, name="Shape documents", schedule=Schedule.objects.get(name="files")
    )
    site = services.add_site(actor=SYSTEM, study=study, code="A", name="Site A")
    services.grant_role(
        actor=SYSTEM, study=study, user=get_user_model().objects.get(username="dm"), role="data_manager"
    )
    subject = services.enroll_subject(
        actor=SYSTEM, study=study, site=site, enrollment_date=dt.date(2025, 1, 6)
    )
    return subject.subject_id


def start(cmd: list[str], log: Path, host: Path) -> subprocess.Popen:
    """Start `cmd` as on its own host: its own MEDIA_ROOT and temporary folder under `host`."""
    (host / "media").mkdir(parents=True, exist_ok=True)
    (host / "tmp").mkdir(parents=True, exist_ok=True)
    env = os.environ.copy() | {"SHAPE_MEDIA_ROOT": str(host / "media"), "TMPDIR": str(host / "tmp")}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - built here


def import_through_the_web(browser: Browser, subject_ids: list[str]) -> dict:
    rows = ["Subject ID,Sex,Age,Weight"] + [
        f"{sid},{1 + i % 2},{30 + i},{60 + i}.5" for i, sid in enumerate(subject_ids)
    ]
    action, fields = browser.form(f"/studies/{SLUG}/imports/", 'type="file"')
    fields.pop("file", None)
    status, headers, data = browser.post(
        action, fields, files={"file": ("visits.csv", "\n".join(rows).encode() + b"\n")}
    )
    check(status == 302, f"the upload answered {status}: {data[:500]!r}")
    upload = headers["Location"]
    outcome = {}
    for step in ("dry_run", "commit"):
        action, fields = browser.form(upload, 'value="dry_run"')
        fields.pop("action", None)
        status, headers, data = browser.post(action, {**fields, "action": step})
        check(status == 302, f"{step} answered {status}: {data[:500]!r}")
        job_id = headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        result = browser.wait_for_job(f"/jobs/{job_id}/")
        check(result["status"] == "succeeded", f"the {step} job ended {result['status']}: {result['error']}")
        outcome[step] = job_id
    return outcome


def export_through_the_web(browser: Browser) -> tuple[str, bytes]:
    action, fields = browser.form(f"/studies/{SLUG}/exports/", 'name="layout"')
    fields = [(k, v) for k, v in fields.items() if k != "formats"] + [("formats", "csv"), ("formats", "xlsx")]
    status, headers, data = browser.request(
        "POST",
        action,
        urllib.parse.urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    check(status == 302, f"the export request answered {status}: {data[:800]!r}")
    job_path = urllib.parse.urlparse(headers["Location"]).path
    result = browser.wait_for_job(job_path)
    check(result["status"] == "succeeded" and result["has_file"], f"the export job ended {result}")
    status, headers, body = browser.request("GET", job_path + "download/")
    check(status == 200, f"the download answered {status}")
    return job_path.rstrip("/").rsplit("/", 1)[-1], body


def ingest_through_the_web(browser: Browser, tmp: Path) -> str:
    """A zip of two CT files of the first subject's PatientID, uploaded on the ingest page; a worker
    indexes it, de-identifies it into the object store and sends it to the research archive."""
    from tests.imaging.conftest import dicom_copy

    folder = tmp / "dicom"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("1.dcm", "2.dcm"):
            dicom_copy(
                "CT_small.dcm", folder / name, patient_id=PATIENT_ID, study_date="20250110", study="shape"
            )
            bundle.write(folder / name, name)
    action, fields = browser.form(f"/studies/{SLUG}/imaging/ingest/", 'type="file"')
    fields.pop("archive", None)
    status, headers, data = browser.post(action, fields, files={"archive": ("scans.zip", archive.getvalue())})
    check(status == 302, f"the DICOM upload answered {status}: {data[:500]!r}")
    job_id = headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    result = browser.wait_for_job(f"/jobs/{job_id}/")
    check(result["status"] == "succeeded", f"the ingest job ended {result['status']}: {result['error']}")
    return job_id


def file_field_through_the_web(browser: Browser, subject_id: str, endpoint: str) -> dict:
    """A PDF put into the "scan" file field on the data-entry page through one app process, then
    downloaded through the other one: the same bytes, kept as one object of the bucket under the
    "capture_files" storage's prefix (hub/files/<study>/<key>/<name>), not on either host's disk
    (verify_files looks at every host's media folder)."""
    content = b"%PDF-1.4\n% shape " + secrets.token_hex(16).encode() + b"\n%%EOF\n"
    entry = f"/studies/{DOCS_SLUG}/subjects/{subject_id}/baseline/documents/1/edit/"
    action, fields = browser.form(entry, 'type="file"')
    fields.pop("scan", None)  # what a browser sends: every field of the form, the file as a part of its own
    upload_port = browser.ports[browser.turn % len(browser.ports)]
    status, headers, data = browser.post(
        action,
        {**fields, "__status": "0", "consent": "1"},
        files={"scan": ("signed consent.pdf", content)},
    )
    check(status == 302, f"the entry page's upload answered {status}: {data[:800]!r}")
    page = browser.get(entry).decode()
    links = sorted(set(re.findall(rf'href="(/studies/{DOCS_SLUG}/files/[0-9a-f-]+/)"', page)))
    check(len(links) == 1, f"the entry page does not link the uploaded file once: {links}")
    # The download goes to the other app process, with the same session (it lives in PostgreSQL).
    other = Browser([port for port in browser.ports if port != upload_port])
    other.cookies = dict(browser.cookies)
    status, headers, body = other.request("GET", links[0])
    check(status == 200, f"the file's download on port {other.ports[0]} answered {status}: {body[:300]!r}")
    check(
        body == content,
        f"the downloaded file is not the uploaded one ({len(body)} bytes, not {len(content)})",
    )
    check("signed_consent.pdf" in headers.get("Content-Disposition", ""), f"the download is named {headers}")
    objects = [k for k in s3server.keys(endpoint, BUCKET, "hub/files/") if k.endswith("/signed_consent.pdf")]
    check(len(objects) == 1, f"the file is not one object of the bucket under hub/files/: {objects}")
    named = re.fullmatch(r"hub/files/\d+/[0-9a-f]{32}/signed_consent\.pdf", objects[0])
    check(named is not None, f"{objects[0]} is not named files/<study>/<key>/<name> under the prefix")
    check(read_object(endpoint, objects[0]) == content, f"{objects[0]} does not hold the upload")
    verify_file_record(objects[0], content)
    return {"bytes": len(content), "object": objects[0], "ports": (upload_port, other.ports[0])}


def verify_file_record(key: str, content: bytes) -> None:
    """The database's side of the upload: the stored file names that object, the record holds its
    reference, and the record's creation is an audit event of the study's chain."""
    from capture.audit.models import AuditEvent
    from capture.audit.services import chain_key, verify_chain
    from capture.files.models import StoredFile
    from capture.records.models import FormRecord
    from capture.studies.models import Study

    study = Study.objects.get(slug=DOCS_SLUG)
    stored = StoredFile.objects.get(study=study)
    check(f"hub/{stored.storage_name}" == key, f"the stored file names {stored.storage_name}, not {key}")
    check(
        stored.sha256 == hashlib.sha256(content).hexdigest(), "the stored file's SHA-256 is not the upload's"
    )
    record = FormRecord.objects.get(subject__study=study, form_name="documents")
    check(record.data.get("scan") == stored.reference, f"the record holds {record.data}, not the file")
    created = AuditEvent.objects.filter(chain=chain_key(study), action="record.create")
    check(created.count() == 1, f"{created.count()} record.create audit events for the form with the file")
    check(verify_chain(chain_key(study)) == [], "the documents study's audit chain does not verify")


def read_object(endpoint: str, key: str) -> bytes:
    """An object's bytes as the store itself gives them (not through Capture)."""
    import boto3

    credentials = s3server.CREDENTIALS
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
    )
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def verify_files(tmp: Path, endpoint: str, hosts: list[Path], archive: str) -> dict:
    """The files are objects of the store, no host kept one locally, and the archive holds the
    de-identified instances (recorded as published)."""
    from dicomweb_client.api import DICOMwebClient

    from capture.imaging.models import PublishedInstance

    keys = s3server.keys(endpoint, BUCKET, "hub/")
    kinds = {
        kind: [k for k in keys if k.startswith(f"hub/{kind}/")] for kind in ("imports", "exports", "deid")
    }
    check(len(kinds["imports"]) == 1, f"the CSV upload is not one object of the bucket: {keys}")
    check(len(kinds["exports"]) == 1, f"the export bundle is not one object of the bucket: {keys}")
    check(len(kinds["deid"]) == 2, f"the two de-identified copies are not in the bucket: {keys}")
    check(
        not [k for k in keys if "imaging-uploads" in k],
        f"the DICOM zip was not deleted after its run: {keys}",
    )
    local = [str(p) for host in hosts for p in (host / "media").rglob("*") if p.is_file()]
    check(not local, f"files were written to a host's local media folder: {local}")
    published = PublishedInstance.objects.filter(status=PublishedInstance.PUBLISHED)
    check(published.count() == 2, f"{published.count()} instances recorded as published, not 2")
    client = DICOMwebClient(url=archive)
    found = [
        item
        for study_uid in sorted(set(published.values_list("study_uid", flat=True)))
        for item in client.search_for_instances(study_instance_uid=study_uid, fields=["PatientID"])
    ]
    uids = {item["00080018"]["Value"][0] for item in found}
    check(
        uids == set(published.values_list("sop_uid", flat=True)),
        "the archive does not hold what was recorded",
    )
    check(PATIENT_ID not in json.dumps(found), "the archive holds the source PatientID")
    return {"objects": len(keys), "published": len(uids)}


def verify(subject_ids: list[str], jobs: dict, bundle: bytes) -> dict:
    from django_tasks_db.models import DBTaskResult

    from capture.audit.models import AuditEvent
    from capture.audit.services import chain_key, verify_chain
    from capture.jobs.models import Job
    from capture.records.models import FormRecord
    from capture.studies.models import Study

    study = Study.objects.get(slug=SLUG)
    records = FormRecord.objects.filter(subject__study=study, form_name="demographics").count()
    check(records == len(subject_ids), f"{records} records in the database, {len(subject_ids)} imported")
    creates = AuditEvent.objects.filter(chain=chain_key(study), action="record.create").count()
    check(creates == len(subject_ids), f"{creates} record.create audit events for {len(subject_ids)} records")
    check(verify_chain(chain_key(study)) == [], "the study's audit chain does not verify")
    workers = set()
    for job in Job.objects.filter(pk__in=jobs.values()):
        check(job.status == Job.SUCCEEDED, f"job {job.title} is {job.status}")
        task = DBTaskResult.objects.filter(args_kwargs__args=[str(job.pk)]).first()
        check(task is not None and task.worker_ids, f"job {job.title} was not run by a db_worker")
        workers.update(task.worker_ids)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            digest = hashlib.sha256(archive.read(entry["name"])).hexdigest()
            check(digest == entry["sha256"], f"{entry['name']} does not match its manifest")
    audited = AuditEvent.objects.get(chain=chain_key(study), action="export.create").after["bundle"]["sha256"]
    check(hashlib.sha256(bundle).hexdigest() == audited, "the download is not the file the audit trail names")
    return {"records": records, "workers": len(workers), "files": len(manifest["files"])}


def main() -> None:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="capture-shape-"))
    processes: list[subprocess.Popen] = []
    stop_pg = None
    try:
        if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
            os.environ["DATABASE_URL"], stop_pg = start_postgres(tmp)
        store, endpoint = s3server.start(tmp / "moto.log")
        processes.append(store)
        s3server.make_bucket(endpoint, BUCKET)
        check(
            orthanc_server.binary() is not None,
            "Orthanc is missing: apt-get install orthanc orthanc-dicomweb",
        )
        (tmp / "orthanc").mkdir()
        archive_process, archive_base = orthanc_server.start(tmp / "orthanc")
        processes.append(archive_process)
        archive = f"{archive_base}/dicom-web"
        write_settings(tmp)
        # Each process reads its own MEDIA_ROOT (start() sets SHAPE_MEDIA_ROOT per "host").
        (tmp / "shape_settings.py").write_text(
            "import os\n\nfrom load_settings import *  # noqa: F403\n\n"
            "MEDIA_ROOT = os.environ['SHAPE_MEDIA_ROOT']\n"
        )
        hosts = [tmp / "hosts" / name for name in HOSTS]
        os.environ.update(
            SHAPE_MEDIA_ROOT=str(tmp / "hosts" / "admin" / "media"),
            CAPTURE_STORAGE=f"s3://{BUCKET}/hub",
            CAPTURE_STORAGE_ENDPOINT=endpoint,
            CAPTURE_DICOMWEB_SERVERS=f"research={archive}",
            CAPTURE_RESEARCH_ARCHIVE="research",
            **s3server.CREDENTIALS,
        )
        os.environ.update(
            DJANGO_SETTINGS_MODULE="shape_settings",
            PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]),
            CAPTURE_SECRET_KEY=secrets.token_hex(32),
            CAPTURE_PSEUDONYM_KEY=PSEUDONYM_KEY,
            CAPTURE_ALLOWED_HOSTS="127.0.0.1",
            CAPTURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1; behind nginx it stays on
            CAPTURE_TASKS="database",
            DATABASE_CONN_MAX_AGE="60",
        )
        sys.path.insert(0, str(tmp))
        manage("migrate", "--noinput")
        manage("collectstatic", "--noinput")
        manage("load_definitions", str(ROOT / "fixtures" / "definitions" / "basic"))
        manage("load_definitions", str(ROOT / "fixtures" / "definitions" / "files"))
        subject_ids = set_up_study()
        document_subject = set_up_documents_study()
        print(
            f"PostgreSQL, migrate, collectstatic, definitions, study: {time.perf_counter() - started:.0f} s"
        )

        ports = [free_port(), free_port()]
        gunicorn = [sys.executable, "-m", "gunicorn", "capture.wsgi", "--workers", "1", "--timeout", "60"]
        for n, port in enumerate(ports):
            processes.append(start([*gunicorn, "--bind", f"127.0.0.1:{port}"], tmp / f"app{n}.log", hosts[n]))
        worker = [sys.executable, "manage.py", "db_worker", "--queue-name", "default", "--interval", "0.2"]
        for n in range(2):
            processes.append(start(worker, tmp / f"worker{n}.log", hosts[2 + n]))
        browser = Browser(ports)
        for port in ports:
            for _ in range(300):
                try:
                    Browser([port]).get("/accounts/login/")
                    break
                except OSError:
                    time.sleep(0.1)
        print(
            f"2 app processes (ports {ports[0]}, {ports[1]}) and 2 db_worker processes up, each with its own "
            f"MEDIA_ROOT; files on the S3 server at {endpoint}, research archive at {archive}"
        )

        t = time.perf_counter()
        browser.log_in("dm")
        jobs = import_through_the_web(browser, subject_ids)
        print(
            f"import: upload, dry run and commit of {SUBJECTS} rows through the workers in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        jobs["ingest"] = ingest_through_the_web(browser, tmp)
        print(
            f"DICOM ingest: upload, index, de-identify, publish by STOW-RS in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        stored = file_field_through_the_web(browser, document_subject, endpoint)
        print(
            f"file field: {stored['bytes']} bytes put in on the entry page (port {stored['ports'][0]}), the same "
            f"bytes downloaded from port {stored['ports'][1]}, object {stored['object']}, in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        statistician = Browser(list(reversed(ports)))
        statistician.log_in("stat")
        jobs["export"], bundle = export_through_the_web(statistician)
        print(
            f"export: requested, written by a worker, downloaded ({len(bundle):,} bytes) in {time.perf_counter() - t:.1f} s"
        )
        figures = verify(subject_ids, jobs, bundle) | verify_files(tmp, endpoint, hosts, archive)
        print(
            f"checked: {figures['records']} records with their audit events, the audit chain, the zip's "
            f"{figures['files']} files against its manifest; jobs run by {figures['workers']} worker(s); "
            f"{figures['objects']} objects in the store and none on a host's disk; "
            f"{figures['published']} de-identified instances in the archive"
        )
        print(f"deploy shape passed in {time.perf_counter() - started:.0f} s")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if stop_pg:
            subprocess.run(stop_pg, capture_output=True, check=False)  # noqa: S603 - pg_ctl stop, built here
        if sys.exc_info()[0] is not None:
            for log in sorted(tmp.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
