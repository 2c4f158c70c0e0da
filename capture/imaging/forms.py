from django import forms

from .models import SourceIdentifier


class UploadForm(forms.Form):
    archive = forms.FileField(
        label="Zip of DICOM files",
        help_text="Headers are read; the zip is deleted after the run. Unreadable files are listed.",
    )

    def clean_archive(self):
        archive = self.cleaned_data["archive"]
        if not archive.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip file (zip the folder of DICOM files first).")
        return archive


class AssignForm(forms.Form):
    subject = forms.ChoiceField(label="Subject")
    reason = forms.CharField(label="Reason", required=False, max_length=255)

    def __init__(self, *args, subjects=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subject"].choices = [("", "— choose —")] + [(s, s) for s in subjects]


class IdentifierForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=SourceIdentifier.KINDS)
    value = forms.CharField(
        label="Identifier",
        max_length=128,
        help_text="Hashed with the study's secret at once; the identifier itself is not stored.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class DicomwebForm(forms.Form):
    server = forms.ChoiceField(label="DICOMweb server")
    patient_id = forms.CharField(
        label="PatientID in the archive",
        max_length=128,
        help_text="Hashed and registered for this subject; studies with it are linked.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, servers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["server"].choices = [(s, s) for s in servers]
