"""Log-in with an optional second factor: a user who has set up an authenticator app
must give its current code as well as the password."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first() if user else None


class LoginForm(AuthenticationForm):
    otp_token = forms.CharField(
        required=False,
        label="Authenticator code",
        help_text="Only if you have set up two-factor log-in.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        cleaned = super().clean()
        self.otp_device = confirmed_device(self.get_user())
        if self.otp_device is not None:
            token = (cleaned.get("otp_token") or "").replace(" ", "")
            if not token:
                raise forms.ValidationError(
                    "Enter the 6-digit code from your authenticator app.", code="token_required"
                )
            # verify_token throttles repeated failures on the device itself.
            if not self.otp_device.verify_token(token):
                raise forms.ValidationError(
                    "That authenticator code is wrong or has expired; enter the current one.",
                    code="invalid_token",
                )
        return cleaned


class ConfirmDeviceForm(forms.Form):
    token = forms.CharField(
        label="Code from your app",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class DisableForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
