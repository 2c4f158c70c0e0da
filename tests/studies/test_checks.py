"""Production refuses to pass `check --deploy` without the pseudonym master key."""

from capture.studies.checks import pseudonym_key_is_set


def test_deploy_check_fails_without_the_pseudonym_key_in_production(settings, monkeypatch):
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY", raising=False)
    settings.PSEUDONYM_KEY_REQUIRED = True
    assert [e.id for e in pseudonym_key_is_set(None)] == ["capture.E001"]
    monkeypatch.setenv("CAPTURE_PSEUDONYM_KEY", "a-long-random-secret")
    assert pseudonym_key_is_set(None) == []


def test_development_derives_the_key_and_needs_no_setting(settings, monkeypatch):
    monkeypatch.delenv("CAPTURE_PSEUDONYM_KEY", raising=False)
    settings.PSEUDONYM_KEY_REQUIRED = False
    assert pseudonym_key_is_set(None) == []
