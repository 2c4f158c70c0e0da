"""The REST API's export endpoint: `POST /api/v1/studies/<slug>/exports/` with an ExportSpec as JSON.

The builder page's service (`services.request_export`), so the same checks run before any job
starts: rights, the selection, and the cohort filter's names and codes. A refusal is a 400 whose
`errors` name the option at fault (`{"cohort": ["The cohort filter names [sex], which is not an
item of this study…"]}`); an accepted export is a 202 with the job, whose result
(`/api/v1/jobs/<id>/`) lists each format as written, with its files, or not, with the reason.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from capture.studies import access

from . import services
from .spec import ExportSpec


class ExportCreate(APIView):
    """Start an export of the study (the options of `capture/exports/spec.py`, as JSON)."""

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            202: OpenApiResponse(description="{'job': id, 'status': 'queued', 'url': the job's API URL}"),
            400: OpenApiResponse(description="{'detail': text, 'errors': {option: [messages]}}"),
        },
    )
    def post(self, request, slug):
        study = access.get_study(request.user, slug, "export_deidentified")
        if request.auth is not None:  # a token: the member's API export right applies
            access.require_api(request.user, study, write=False)
        try:
            spec = ExportSpec.from_dict(_options(request.data))
            job = services.request_export(actor=request.user, study=study, spec=spec)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"spec": exc.messages}
            return Response(
                {"detail": " ".join(exc.messages), "errors": errors}, status=status.HTTP_400_BAD_REQUEST
            )
        return Response(
            {"job": str(job.pk), "status": job.status, "url": reverse("api:job-detail", args=[job.pk])},
            status=status.HTTP_202_ACCEPTED,
        )


def _options(data) -> dict:
    """The spec's options: a JSON object; an empty form body means every default."""
    if isinstance(data, QueryDict):
        if data:
            raise ValidationError(
                {"spec": ["Send the export options as a JSON object (Content-Type: application/json)."]}
            )
        return {}
    if not isinstance(data, dict):
        raise ValidationError({"spec": ["The export options must be a JSON object."]})
    return data
