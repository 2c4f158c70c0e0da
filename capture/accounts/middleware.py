"""When CAPTURE_REQUIRE_2FA is on, a logged-in user who has not passed a second factor
can reach only the two-factor set-up page and log-out."""

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse


class RequireTwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if settings.CAPTURE.get("REQUIRE_2FA") and user is not None and user.is_authenticated:
            allowed = (reverse("accounts:two_factor"), reverse("logout"), settings.STATIC_URL)
            if not user.is_verified() and not request.path.startswith(allowed):
                return redirect("accounts:two_factor")
        return self.get_response(request)
