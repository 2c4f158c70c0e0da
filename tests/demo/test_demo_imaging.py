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
