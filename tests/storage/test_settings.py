"""CAPTURE_STORAGE chooses where every named storage keeps its files."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from capture.storage_settings import KINDS, LOCAL_BACKEND, OBJECT_BACKEND, storages


def test_unset_it_is_the_local_media_folder_for_every_kind():
    found = storages("")
    assert set(found) == {"uploads", "results", "images", "capture_files"} == set(KINDS)
    assert all(s == {"BACKEND": LOCAL_BACKEND, "OPTIONS": {"allow_overwrite": True}} for s in found.values())


def test_a_file_url_is_a_local_folder():
    assert storages("file:///srv/capture/media")["results"]["OPTIONS"]["location"] == "/srv/capture/media"


def test_an_s3_url_is_the_bucket_and_prefix_with_the_endpoint_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAPTURE_STORAGE_ENDPOINT", "https://minio.internal:9000")
    monkeypatch.setenv("CAPTURE_STORAGE_REGION", "eu-west-1")
    found = storages("s3://capture-hub/prod/files")["images"]
    assert found["BACKEND"] == OBJECT_BACKEND
    options = found["OPTIONS"]
    assert (options["bucket_name"], options["location"]) == ("capture-hub", "prod/files")
    assert options["endpoint_url"] == "https://minio.internal:9000" and options["region_name"] == "eu-west-1"
    assert options["addressing_style"] == "path" and options["querystring_expire"] == 300


def test_on_aws_no_endpoint_is_sent(monkeypatch):
    monkeypatch.delenv("CAPTURE_STORAGE_ENDPOINT", raising=False)
    options = storages("s3://capture-hub")["uploads"]["OPTIONS"]
    assert "endpoint_url" not in options and "addressing_style" not in options and options["location"] == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "names no bucket"),
        ("ftp://host/x", "unknown scheme"),
        ("file://relative/x", "file:///absolute"),
    ],
)
def test_a_wrong_url_stops_the_start_with_how_to_write_it(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        storages(url)


def test_an_endpoint_that_is_no_url_is_refused(monkeypatch):
    monkeypatch.setenv("CAPTURE_STORAGE_ENDPOINT", "minio:9000")
    with pytest.raises(ImproperlyConfigured, match="give the object store's URL"):
        storages("s3://bucket")
