"""A study created on the web has its creator as first administrator, so it is set up in Capture's
own pages (issue 15: "Add its sites next", with no page to do it but Django admin)."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from capture.audit.models import AuditEvent
from capture.studies.models import Membership, Study
from tests.interop.conftest import REDCAP, shared


def test_the_creator_of_a_study_is_its_first_administrator_and_lands_on_its_sites(client, make_user):
    founder = make_user("founder", is_staff=True)
    client.force_login(founder)
    data = shared(REDCAP / "redcapr_simple_dictionary.csv").read_bytes()
    preview = client.post(
        reverse("definitions:import_new"),
        {"format": "redcap", "target": "study", "slug": "fresh", "name": "Fresh",
         "file": SimpleUploadedFile("dictionary.csv", data, content_type="text/csv")},
    )  # fmt: skip
    confirmed = client.post(reverse("definitions:import_new"), {"token": preview.context["token"]})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("administration:sites", args=["fresh"])
    study = Study.objects.get(slug="fresh")
    membership = Membership.objects.get(study=study)
    assert (membership.user, membership.role) == (founder, "study_admin")
    grant = AuditEvent.objects.get(study=study, action="membership.grant")
    assert (grant.actor_label, grant.object_label) == ("founder", "founder as Study administrator")
    assert client.get(confirmed["Location"]).status_code == 200
    response = client.post(
        reverse("administration:site_add", args=["fresh"]), {"code": "N1", "name": "North"}
    )
    assert response.status_code == 302 and study.sites.get().code == "N1"
