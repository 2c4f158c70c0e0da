"""A missing outside requirement (../shared, Chromium, Orthanc) skips a test locally and fails it in CI."""

import pytest

from tests.requirements import need, need_shared


def test_a_missing_requirement_fails_the_test_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        need(False, "Debian's chromium", "apt-get install chromium")
    assert (
        str(failed.value)
        == "CI must run this test, but Debian's chromium is missing: apt-get install chromium."
    )


def test_a_missing_requirement_skips_the_test_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        need(False, "Debian's chromium", "apt-get install chromium")
    assert str(skipped.value) == "Debian's chromium is missing; to run this test, apt-get install chromium."


@pytest.mark.parametrize("value", ["", "0", "false", "False"])
def test_ci_set_to_false_is_a_local_run(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        need(False, "Orthanc", "apt-get install orthanc")


@pytest.mark.parametrize("ci", ["true", None])
def test_a_present_requirement_lets_the_test_run(monkeypatch, ci, tmp_path):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert need(True, "Orthanc", "apt-get install orthanc") is None
    assert need_shared(tmp_path) == tmp_path


def test_a_missing_shared_file_names_the_file_and_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    missing = tmp_path / "data" / "redcap" / "x.csv"
    with pytest.raises(pytest.fail.Exception, match=r"\.\./shared \(.*x\.csv\) is missing: put the team's"):
        need_shared(missing)
