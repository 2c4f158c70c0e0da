"""A real S3-compatible server for tests and benchmarks: moto in server mode (`python -m
moto.server`) on 127.0.0.1 at a free port, reached over HTTP by boto3 exactly as AWS S3, MinIO or
Ceph would be (the same django-storages code path, only CAPTURE_STORAGE_ENDPOINT differs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import servers

# moto accepts any key; these only have to be present, as real credentials would be.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "capture-test",
    "AWS_SECRET_ACCESS_KEY": "capture-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start(log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server; return (process, endpoint URL). Fails if it does not answer in 30 s."""
    port = port or servers.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = servers.start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        log=log,
        ready_url=f"{endpoint}/moto-api/",
        name="moto's S3 server",
    )
    return process, endpoint


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    client.create_bucket(Bucket=bucket)


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object name in the bucket under `prefix`, as the store itself lists them."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }
