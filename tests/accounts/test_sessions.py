"""The idle timeout slides without a session write on every request."""

from django.contrib.sessions.models import Session
from django.urls import reverse

from capture.accounts import sessions


def _expiry(client):
    return Session.objects.get(session_key=client.session.session_key).expire_date


def test_a_busy_session_is_renewed_at_most_once_a_minute(client, personas, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(sessions.time, "time", lambda: clock[0])
    client.force_login(personas["data_manager"])
    url = reverse("web:study_list")
    client.get(url)
    first = _expiry(client)
    clock[0] += 30
    client.get(url)
    assert _expiry(client) == first, "within the minute the session is not written again"
    clock[0] += 31
    client.get(url)
    assert _expiry(client) > first, "after a minute the expiry moves forward"


def test_the_renewal_runs_where_the_session_middleware_saves_it(settings):
    index = settings.MIDDLEWARE.index
    assert index("capture.accounts.sessions.SlidingSessionMiddleware") > index(
        "django.contrib.sessions.middleware.SessionMiddleware"
    )
