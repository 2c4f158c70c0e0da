"""A throw-away Orthanc with its DICOMweb plugin on 127.0.0.1: the research archive of the tests
(conftest.orthanc) and of benchmarks/deploy_shape.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def binary() -> str | None:
    return shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(work: Path) -> tuple[subprocess.Popen, str]:
    """Start Orthanc with its database in `work`; return (process, base URL; DICOMweb under
    <base>/dicom-web). RuntimeError, naming the log, if it does not answer within 30 s."""
    http, dicom = free_port(), free_port()
    config = {
        "Name": "capture-test",
        "StorageDirectory": str(work / "db"),
        "IndexDirectory": str(work / "db"),
        "HttpPort": http,
        "DicomPort": dicom,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1,
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    with (work / "orthanc.log").open("w") as log:  # Orthanc keeps its own copy of the descriptor
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [binary() or "Orthanc", str(work / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/system", timeout=1):  # noqa: S310 - local test server
                return process, base
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"Orthanc did not start; see {work / 'orthanc.log'}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
