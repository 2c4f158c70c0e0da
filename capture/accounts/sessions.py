"""An idle timeout without a database write on every request.

Django's SESSION_SAVE_EVERY_REQUEST renews the session's expiry by saving it on each request: on a
busy data-entry page that is a third of the database work. This middleware renews it at most once a
minute instead, so a session still ends after CAPTURE_SESSION_SECONDS of inactivity, give or take
that minute. It must come after SessionMiddleware (which saves a modified session on the way out).
"""

import time

RENEW_EVERY = 60  # seconds
_KEY = "_capture_renewed"


class SlidingSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.session_key:
            now = int(time.time())
            if now - session.get(_KEY, 0) >= RENEW_EVERY:
                session[_KEY] = now  # modified: saved with a fresh expiry on the way out
        return self.get_response(request)
