"""A real S3-compatible server for tests and benchmarks: moto in server mode (`python -m
moto.server`) on 127.0.0.1 at a free port, reached over HTTP by boto3 exactly as AWS S3, MinIO or
Ceph would be (the same django-storages code path, only CAPTURE_STORAGE_ENDPOINT differs)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# moto accepts any key; these only have to be present, as real credentials would be.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "capture-test",
    "AWS_SECRET_ACCESS_KEY": "capture-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server; return (process, endpoint URL). Fails if it does not answer in 30 s."""
    port = port or free_port()
    with log.open("w") as handle:  # the server keeps its own copy of the descriptor
        process = subprocess.Popen(  # noqa: S603 - a fixed command
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 - local test server
                return process, endpoint
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto's S3 server did not start; see {log}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


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
