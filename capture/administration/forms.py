"""The administration pages' forms: they clean what was typed; the services decide."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from capture.studies.models import Site, Study
from capture.studies.roles import ROLE_CHOICES

DATE = forms.DateInput(attrs={"type": "date"})


def open_sites(study):
    return Site.objects.filter(study=study, retired_at__isnull=True)


class ApiRightsForm(forms.Form):
    api_export = forms.BooleanField(required=False, initial=True, label="API may export records")
    api_import = forms.BooleanField(required=False, initial=True, label="API may import records")
    api_expires = forms.DateField(required=False, widget=DATE, label="API rights end after")


class MemberForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)
    sites = forms.ModelMultipleChoiceField(
        queryset=Site.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only roles that work at named sites (the coordinator) use these.",
    )

    def __init__(self, *args, study, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sites"].queryset = open_sites(study)


class AddMemberForm(MemberForm, ApiRightsForm):
    username = forms.CharField(required=False, label="An existing user's name")
    email = forms.EmailField(required=False, label="…or invite by e-mail")

    field_order = ["username", "email", "role", "sites", "api_export", "api_import", "api_expires"]

    def clean(self):
        data = super().clean()
        username, email = data.get("username"), data.get("email")
        if bool(username) == bool(email):
            raise forms.ValidationError("Give either an existing user's name or an e-mail address to invite.")
        if username:
            user = get_user_model().objects.filter(username=username, is_active=True).first()
            if user is None:
                self.add_error("username", f"No active user {username!r}; invite them by e-mail instead.")
            data["user"] = user
        return data


class SiteForm(forms.Form):
    code = forms.CharField(
        max_length=16, help_text="Letters and digits; part of subject ids and the REDCap DAG unique name."
    )
    name = forms.CharField(max_length=255)


class RenameSiteForm(forms.Form):
    name = forms.CharField(max_length=255)


class MoveSubjectForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.none(), empty_label=None, label="New site")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Goes into the audit trail.")

    def __init__(self, *args, study, subject, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = open_sites(study).exclude(pk=subject.site_id)


class MissingCodesForm(forms.Form):
    codes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="One per line: CODE = meaning (for example UNK = Unknown).",
    )

    def clean_codes(self):
        codes = []
        for n, line in enumerate(self.cleaned_data["codes"].splitlines(), start=1):
            if not line.strip():
                continue
            code, sep, meaning = line.partition("=")
            if not sep or not code.strip() or not meaning.strip():
                raise forms.ValidationError(f"Line {n}: write CODE = meaning.")
            codes.append({"code": code.strip(), "meaning": meaning.strip()})
        return codes

    @staticmethod
    def text_of(codes) -> str:
        return "\n".join(f"{c['code']} = {c['meaning']}" for c in codes)


class StudyStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Study.STATUSES, widget=forms.RadioSelect, label="Status")
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed to close or reopen the study; goes into the audit trail.",
    )


class SubjectIdPolicyForm(forms.Form):
    subject_ids = forms.ChoiceField(choices=Study.ID_POLICIES, widget=forms.RadioSelect, label="Subject ids")
    subject_id_pattern = forms.CharField(
        max_length=64,
        label="Pattern",
        help_text="Fields: {site} (site code), {study} (study short name), {seq} (number at the site), "
        "e.g. {site}-{seq:04d}. Used when ids are generated.",
    )


class ResponseRuleForm(forms.Form):
    """The study's response rule (capture/measurements/response_rule.py decides)."""

    confirm = forms.TypedChoiceField(
        choices=[
            ("0", "None: the best response as recorded"),
            ("1", "Confirmed CR and PR (RECIST 1.1 §4.4.2)"),
        ],
        coerce=lambda value: value == "1",
        widget=forms.RadioSelect,
        label="Confirmation",
    )
    confirm_min_days = forms.IntegerField(
        min_value=1, max_value=365, label="Confirmed after (days)", help_text="RECIST 1.1: at least 28."
    )
    sd_min_days = forms.IntegerField(
        min_value=1, max_value=365, label="Stable disease from (days after baseline)"
    )
    response_item = forms.CharField(
        max_length=100,
        required=False,
        label="Readers' overall response item",
        help_text="Compared with the computed response by the data quality checks; blank: none.",
    )

    @staticmethod
    def initial_of(rule) -> dict:
        return {
            "confirm": "1" if rule.confirm else "0",
            "confirm_min_days": rule.confirm_min_days,
            "sd_min_days": rule.sd_min_days,
            "response_item": rule.response_item,
        }
