"""Log-in (password, then the authenticator code if one is set up) and two-factor set-up."""

import base64
import io

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

from capture.audit.services import record_event

from .forms import ConfirmDeviceForm, DisableForm, LoginForm, confirmed_device


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        if form.otp_device is not None:
            otp_login(self.request, form.otp_device)
        return response


def _qr_data_uri(device: TOTPDevice) -> str:
    out = io.BytesIO()
    write_qrcode_image(device.config_url, out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


@login_required
def two_factor(request):
    user = request.user
    device = confirmed_device(user)
    if device is not None:
        form = DisableForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if not user.check_password(form.cleaned_data["password"]):
                form.add_error("password", "That is not your password.")
            else:
                with transaction.atomic():
                    TOTPDevice.objects.filter(user=user).delete()
                    record_event(
                        actor=user,
                        action="account.2fa.disable",
                        object_type="user",
                        object_id=user.pk,
                        object_label=user.get_username(),
                    )
                messages.success(request, "Two-factor log-in is off.")
                return redirect("accounts:two_factor")
        return render(request, "accounts/two_factor.html", {"enabled": True, "form": form})

    pending = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if pending is None:
        pending = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = ConfirmDeviceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if pending.verify_token(form.cleaned_data["token"].replace(" ", "")):
            with transaction.atomic():
                pending.confirmed = True
                pending.save(update_fields=["confirmed"])
                record_event(
                    actor=user,
                    action="account.2fa.enable",
                    object_type="user",
                    object_id=user.pk,
                    object_label=user.get_username(),
                )
            otp_login(request, pending)
            messages.success(request, "Two-factor log-in is on. You will be asked for a code at each log-in.")
            return redirect("accounts:two_factor")
        form.add_error(
            "token", "That code does not match; check the time on your phone and try the current code."
        )
    secret = base64.b32encode(pending.bin_key).decode().rstrip("=")
    return render(
        request,
        "accounts/two_factor.html",
        {"enabled": False, "form": form, "qr": _qr_data_uri(pending), "secret": secret},
    )
