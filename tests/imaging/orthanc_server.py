"""A throw-away Orthanc with its DICOMweb plugin on 127.0.0.1: the research archive of the tests
(conftest.orthanc) and of benchmarks/deploy_shape.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests import servers

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def binary() -> str | None:
    return shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)


def start(work: Path) -> tuple[subprocess.Popen, str]:
    """Start Orthanc with its database in `work`; return (process, base URL; DICOMweb under
    <base>/dicom-web). RuntimeError, naming the log, if it does not answer within 30 s."""
    http, dicom = servers.free_port(), servers.free_port()
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
    base = f"http://127.0.0.1:{http}"
    process = servers.start(
        [binary() or "Orthanc", str(work / "orthanc.json")],
        log=work / "orthanc.log",
        ready_url=f"{base}/system",
        name="Orthanc",
    )
    return process, base
