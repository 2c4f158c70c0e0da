"""Records for export tests: two patients (sites A and B) and a PDX model, on the basic schedule."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from capture.exports.services import export_dataset
from capture.exports.spec import ExportSpec
from capture.records.services import save_record


@pytest.fixture
def records(subjects, personas):
    admin = personas["admin"]
    a, b, model = subjects["a"], subjects["b"], subjects["model"]

    def save(subject, event, form, values, instance=1, status=2):
        return save_record(
            actor=admin,
            subject=subject,
            event_name=event,
            form_name=form,
            values=values,
            status=status,
            instance=instance,
        )

    save(
        a,
        "baseline",
        "demographics",
        {
            "initials": "ABC",
            "sex": "1",
            "age": 54,
            "weight": "70.5",
            "smoker": "1",
            "symptoms": ["pain", "nausea"],
            "er_status": "pos",
            "pr_status": "neg",
        },
    )
    save(
        b,
        "baseline",
        "demographics",
        {
            "initials": "XY",
            "sex": "2",
            "age": "UNK",
            "weight": "81.2",
            "smoker": "0",
            "symptoms": [],
            "er_status": "NA",
            "pr_status": "pos",
        },
        status=1,
    )
    save(
        a,
        "baseline",
        "lesions",
        {
            "visit_date": "2025-03-03",
            "target_lesions": [
                {"lesion_site": "liver", "lesion_diameter": "12.5"},
                {"lesion_site": '=HYPERLINK("http://x")', "lesion_diameter": "8"},
            ],
        },
    )
    save(
        a,
        "week_8",
        "lesions",
        {"visit_date": "2025-04-28", "target_lesions": [{"lesion_site": "liver", "lesion_diameter": "10.0"}]},
    )
    save(a, "week_8", "lesions", {"visit_date": "2025-05-05"}, instance=2)
    save(b, "baseline", "lesions", {"visit_date": "UNK"}, status=0)
    save(model, "implant", "animal", {"strain": "NSG"})
    return subjects


@pytest.fixture
def run_export(tmp_path):
    """Export as `user`; returns (zip path, manifest, folder with the unpacked files)."""

    def run(user, study, **options):
        spec = ExportSpec(**options)
        result = export_dataset(actor=user, study=study, spec=spec, output_dir=tmp_path / "out")
        unpacked = tmp_path / f"unpacked-{result.path.stem}"
        with zipfile.ZipFile(result.path) as bundle:
            bundle.extractall(unpacked)
        return result.path, result.manifest, Path(unpacked)

    return run
