"""Demo scans: ingested through the real path, most linked to their patients, two queued."""

from capture.demo.imaging import seed_imaging
from capture.imaging import timeline
from capture.imaging.models import ImagingStudy


def test_demo_imaging_links_registered_patients_and_leaves_the_others_queued(study, subjects, personas):
    report = seed_imaging(study, patients=1, queued=1)
    assert report.unreadable == [] and report.linked == 4 and report.queued == 4
    data = timeline.build(personas["pi"], subjects["a"])
    # The test schedule has windows at day 0 (no slack) and 56 ± 7: only the PET/CT falls in one.
    assert [s.event for s in data.imaging] == [None, "week_8", None, None]
    assert ImagingStudy.objects.get(subject=subjects["a"], modalities="PT").radiopharmaceutical


def test_demo_measurement_reports_give_the_first_patients_recist_responses(study, subjects, personas):
    from capture.measurements.models import BestResponse, Lesion, MeasurementReport, TimepointResponse

    seed_imaging(study, patients=2, queued=0, measured=2)
    a, b = subjects["a"], subjects["b"]
    assert MeasurementReport.objects.filter(subject=a).count() == 4
    assert sorted(Lesion.objects.filter(subject=a).values_list("tracking_id", "role")) == [
        ("L1", "target"),
        ("L2", "target"),
        ("N1", "target"),
    ]

    def overall(subject):
        rows = TimepointResponse.objects.filter(subject=subject, method="recist11").order_by("day")
        return [r.overall for r in rows]

    # a (course "PR"): sums 74, 52 (-29.7 %: not yet PR), 41 (-44.6 %), 39 mm; b ("SD"): 50, 47, 46, 49.
    assert overall(a) == ["", "SD", "PR", "PR"]
    assert overall(b) == ["", "SD", "SD", "SD"]
    assert BestResponse.objects.get(subject=a, method="recist11").response == "PR"
    data = timeline.build(personas["statistician"], a)
    assert "Demo^Reader" not in str(data.as_dict())
