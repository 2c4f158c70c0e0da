"""Two-factor log-in: set up with an authenticator app, required at log-in once on, optional by default."""

from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from capture.audit.models import AuditEvent
from tests.conftest import PASSWORD


def _code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def test_user_with_an_authenticator_must_give_its_code(client, make_user):
    user = make_user("carol")
    device = _device(user)
    url = reverse("login")
    no_code = client.post(url, {"username": "carol", "password": PASSWORD})
    assert no_code.status_code == 200 and "6-digit code" in no_code.content.decode()
    wrong = client.post(url, {"username": "carol", "password": PASSWORD, "otp_token": "000000"})
    assert wrong.status_code == 200 and "wrong or has expired" in wrong.content.decode()
    device.refresh_from_db()
    device.throttling_failure_count = 0  # the wrong code throttled the device; the test moves on
    device.throttling_failure_timestamp = None
    device.save()
    ok = client.post(url, {"username": "carol", "password": PASSWORD, "otp_token": _code(device)})
    assert ok.status_code == 302
    assert client.get(reverse("web:study_list")).wsgi_request.user.is_verified()


def test_user_without_an_authenticator_logs_in_with_the_password_alone(client, make_user):
    make_user("dave")
    response = client.post(reverse("login"), {"username": "dave", "password": PASSWORD})
    assert response.status_code == 302


def test_setting_up_an_authenticator_needs_a_valid_code_and_is_audited(client, make_user):
    user = make_user("erin")
    client.force_login(user)
    page = client.get(reverse("accounts:two_factor")).content.decode()
    assert "data:image/svg+xml;base64," in page
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    bad = client.post(reverse("accounts:two_factor"), {"token": "123456"})
    assert "does not match" in bad.content.decode()
    pending.refresh_from_db()
    pending.throttling_failure_count = 0
    pending.throttling_failure_timestamp = None
    pending.save()
    client.post(reverse("accounts:two_factor"), {"token": _code(pending)})
    assert TOTPDevice.objects.get(user=user).confirmed
    assert AuditEvent.objects.filter(action="account.2fa.enable", actor=user).exists()


def test_turning_it_off_needs_the_password(client, make_user):
    user = make_user("frank")
    _device(user)
    client.force_login(user)
    client.post(reverse("accounts:two_factor"), {"password": "not-it"})
    assert TOTPDevice.objects.filter(user=user).exists()
    client.post(reverse("accounts:two_factor"), {"password": PASSWORD})
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_when_required_an_unverified_user_is_sent_to_set_up(client, make_user, settings):
    settings.CAPTURE = {**settings.CAPTURE, "REQUIRE_2FA": True}
    client.force_login(make_user("gina"))
    response = client.get(reverse("web:study_list"))
    assert response.status_code == 302 and response.url == reverse("accounts:two_factor")
    assert client.get(reverse("accounts:two_factor")).status_code == 200
