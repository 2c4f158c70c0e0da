"""Object storage for the tests: one moto S3 server for the session (tests/storage/s3server.py),
a fresh bucket per test, and every named storage of Capture switched to it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from capture import storage_settings
from tests import servers

from . import s3server


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    process, endpoint = s3server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield endpoint
    servers.stop(process)


@dataclass
class Bucket:
    endpoint: str
    name: str
    prefix: str

    def keys(self, under: str = "") -> list[str]:
        """Object names (without the deployment prefix) under `under`."""
        found = s3server.keys(self.endpoint, self.name, f"{self.prefix}/{under}")
        return [key.removeprefix(f"{self.prefix}/") for key in found]


def use_s3(settings, monkeypatch, endpoint: str, bucket: str, prefix: str) -> None:
    for name, value in s3server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CAPTURE_STORAGE_ENDPOINT", endpoint)
    settings.STORAGES = {**settings.STORAGES, **storage_settings.storages(f"s3://{bucket}/{prefix}")}


@pytest.fixture
def s3(s3_endpoint, settings, monkeypatch, tmp_path):
    """Capture's storages on a new bucket of the S3 server; MEDIA_ROOT an empty folder that
    nothing may write to (asserted by the tests that use it)."""
    name = f"capture-{uuid.uuid4().hex[:12]}"
    s3server.make_bucket(s3_endpoint, name)
    settings.MEDIA_ROOT = tmp_path / "media"
    use_s3(settings, monkeypatch, s3_endpoint, name, "hub")
    return Bucket(s3_endpoint, name, "hub")
