"""Settings shared by every environment. Environment-specific modules import
this and override; values that differ per deployment come from the environment."""

import os
from pathlib import Path
from typing import Any

import dj_database_url

from capture import storage_settings
from capture.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "capture.accounts",
    "capture.audit",
    "capture.definitions",
    "capture.studies",
    "capture.records",
    "capture.files",
    "capture.reports",
    "capture.jobs",
    "capture.imports",
    "capture.imaging",
    "capture.measurements",
    "capture.exports",
    "capture.api",
    "capture.web",
    "capture.administration",
    "capture.monitoring",
    "capture.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "capture.accounts.sessions.SlidingSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "capture.accounts.middleware.RequireTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "capture.web.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into a clear page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "capture.urls"
WSGI_APPLICATION = "capture.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite in var/ is the embedded default; DATABASE_URL selects PostgreSQL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'capture.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        # A persistent connection that died with a database restart is replaced before the request
        # uses it, instead of failing that request (tests/faults/test_postgres_restart.py).
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Capture grants nothing to anonymous users, so guardian needs no anonymous user row.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Lock an account out after repeated failures (per user and address), as a clinical system must.
AXES_FAILURE_LIMIT = env_int("CAPTURE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 1  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
OTP_TOTP_ISSUER = "Capture"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:study_list"
LOGOUT_REDIRECT_URL = "login"

# Idle sessions end: clinical data should not sit open on an unattended screen.
SESSION_COOKIE_AGE = env_int("CAPTURE_SESSION_SECONDS", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_SAVE_EVERY_REQUEST = False  # capture.accounts.sessions renews the expiry once a minute
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("CAPTURE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"
# Files go through named storages (capture/storage.py): a local folder by default, S3-compatible
# object storage with CAPTURE_STORAGE=s3://bucket/prefix (capture/storage_settings.py, docs/deploy.md).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    **storage_settings.storages(),
}

# Capture's own options, one namespaced dict (STYLE.md §6).
CAPTURE: dict[str, Any] = {
    "DEFINITIONS_DIR": BASE_DIR / "crf_definitions",
    "DASHBOARD_PAGE_SIZE": 50,  # 50 subjects × a schedule of ~20 forms: ~165 KB a page (issue 16: under 300 KB)
    # With CAPTURE_REQUIRE_2FA=true every user must log in with an authenticator code.
    "REQUIRE_2FA": env_bool("CAPTURE_REQUIRE_2FA", False),
    # Background jobs run only functions under these packages (a job row names its handler).
    "JOB_HANDLER_PREFIXES": ("capture.",),
    # Development's pseudonym master key, made once with mode 0600 when CAPTURE_PSEUDONYM_KEY is
    # not set (capture/studies/pseudonyms.py); production requires the environment variable.
    "PSEUDONYM_KEY_FILE": VAR_DIR / "pseudonym.key",
    # What one spreadsheet upload may cost (defaults in capture/imports/readers.py DEFAULT_LIMITS):
    # IMPORT_MAX_BYTES (file), IMPORT_MAX_UNPACKED_BYTES (an .xlsx/.ods unzipped), IMPORT_MAX_ROWS,
    # IMPORT_MAX_CELL_CHARS (32,767, Excel's own) and IMPORT_MAX_HEADER_CHARS.
    "IMPORT_MAX_UNPACKED_BYTES": env_int("CAPTURE_IMPORT_MAX_UNPACKED_MB", 200) * 1024 * 1024,
    # File fields (capture/files/services.py): the largest upload, the extensions taken (the type
    # is the one the extension names), optional content types, and a virus-scan hook: the dotted
    # path of a callable(file, name) that raises capture.files.services.FileRejectedError or returns
    # a reason to refuse the upload (empty: no scan).
    "FILE_MAX_BYTES": env_int("CAPTURE_FILE_MAX_BYTES", 20 * 1024 * 1024),
    "FILE_EXTENSIONS": env_list(
        "CAPTURE_FILE_EXTENSIONS",
        ["pdf", "png", "jpg", "jpeg", "gif", "tif", "tiff", "txt", "csv", "docx", "xlsx", "dcm", "zip"],
    ),
    "FILE_CONTENT_TYPES": env_list("CAPTURE_FILE_CONTENT_TYPES", []),
    "FILE_SCANNER": os.environ.get("CAPTURE_FILE_SCANNER", ""),
    # On object storage, downloads redirect to a link signed for five minutes instead of passing
    # through the app (the browser must reach the object store's address).
    "STORAGE_SIGNED_URLS": env_bool("CAPTURE_STORAGE_SIGNED_URLS", False),
    # The research image archive: a server name of CAPTURE_DICOMWEB_SERVERS. When set, a DICOM zip
    # ingested by a user who may share de-identified data is also de-identified into the "images"
    # storage and sent there by STOW-RS (capture/imaging/publish.py).
    "RESEARCH_ARCHIVE": os.environ.get("CAPTURE_RESEARCH_ARCHIVE", "").strip(),
}

# Background work (imports, exports, DICOM ingest) goes through Django's tasks interface.
# The embedded default runs a task at once in the process that asked for it; with
# CAPTURE_TASKS=database, tasks wait in the database for `manage.py db_worker`.
_TASK_BACKENDS = {
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
_task_backend = env_str("CAPTURE_TASKS", "immediate")
if _task_backend not in _TASK_BACKENDS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"CAPTURE_TASKS={_task_backend!r}: use 'immediate' or 'database'.")
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[_task_backend]}}

# The REST API (capture/api): personal tokens or the browser session; every view filters
# through capture.studies.access, so the default permission only asks for a logged-in user.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "capture.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "capture.api.exceptions.handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Capture API",
    "DESCRIPTION": "Studies, sites, subjects, definitions, form records, audit and jobs. "
    "Every list shows only what your role and sites allow.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"SubjectKindEnum": "capture.studies.models.Subject.KINDS"},
}
# The largest body the REDCap endpoint reads (a larger one is refused on its Content-Length
# before anything is parsed); raise it for very large one-call imports.
REDCAP_API_MAX_BODY_BYTES = env_int("CAPTURE_REDCAP_MAX_BODY_BYTES", 64 * 1024 * 1024)
# PyCap sends every field and record name as its own parameter (fields[0]=…, fields[1]=…).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100_000
