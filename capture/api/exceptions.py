"""The REST API's error answers: DRF's, plus the record service's refusals.

- RecordValidationError: 400 with the field errors;
- EditConflictError: 409 with the current record and, when the view says (its `submitted`),
  what was sent;
- RecordLockedError: 423;
- any other Django ValidationError from a service: 400.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from capture.records.services import EditConflictError, RecordLockedError, RecordValidationError

from .serializers import RecordSerializer


def handler(exc, context):
    if isinstance(exc, RecordValidationError):
        return Response(
            {
                "detail": "Some values are not valid; fix them and send the record again.",
                "errors": exc.field_errors,
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, EditConflictError):
        return Response(_conflict(exc, context), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, RecordLockedError):
        return Response({"detail": str(exc)}, status=status.HTTP_423_LOCKED)
    if isinstance(exc, ValidationError):
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)


def _conflict(exc: EditConflictError, context) -> dict:
    view = context.get("view")
    serializer_context = view.get_serializer_context() if hasattr(view, "get_serializer_context") else context
    body = {
        "detail": str(exc),
        "current": RecordSerializer(exc.current, context=serializer_context).data,
    }
    submitted = getattr(view, "submitted", None)
    if submitted is not None:
        body["submitted"] = submitted
    return body
