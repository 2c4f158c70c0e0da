"""Pages: API tokens (make, list, revoke) and the API docs rendered from the OpenAPI schema.

A new token is shown once, in the answer to the POST that made it; it is never stored
in plain or put in a session. Every token page is sent with `Cache-Control: no-store`, so
neither the browser's cache (Back, a shared machine) nor a proxy keeps a copy of a token.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from capture.studies import access

from . import tokens
from .models import ApiToken, RedcapToken


def _token_page(request, **extra):
    user = request.user
    studies = list(access.studies_visible_to(user).order_by("name"))
    live = {t.study_id: t for t in RedcapToken.objects.filter(user=user, revoked_at__isnull=True)}
    context = {
        "api_tokens": ApiToken.objects.filter(user=user),
        "studies": [(study, live.get(study.pk)) for study in studies],
        "redcap_url": request.build_absolute_uri(reverse("api:redcap")),
        "api_url": request.build_absolute_uri(reverse("api:study-list")),
        "docs_url": reverse("api:docs"),
        **extra,
    }
    return render(request, "api/tokens.html", context)


@never_cache
@login_required
def token_list(request):
    return _token_page(request)


@never_cache
@login_required
@require_POST
def token_create(request):
    try:
        token, plain = tokens.create_api_token(user=request.user, name=request.POST.get("name", ""))
    except ValidationError as exc:
        return _token_page(request, error=" ".join(exc.messages))
    return _token_page(request, new_token=plain, new_token_label=token.name)


@login_required
@require_POST
def token_revoke(request, pk: int):
    tokens.revoke_api_token(user=request.user, token_id=pk)
    return redirect("api:tokens")


@never_cache
@login_required
@require_POST
def redcap_token_create(request, slug: str):
    study = access.get_study(request.user, slug)
    try:
        _, plain = tokens.create_redcap_token(user=request.user, study=study)
    except PermissionDenied as exc:
        return _token_page(request, error=str(exc))
    return _token_page(request, new_token=plain, new_token_label=f"REDCap API token for {study.name}")


@login_required
@require_POST
def redcap_token_revoke(request, pk: int):
    tokens.revoke_redcap_token(user=request.user, token_id=pk)
    return redirect("api:tokens")


@lru_cache(maxsize=1)
def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _ref_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array" and "items" in schema:
        return f"list of {_ref_name(schema['items'])}"
    return schema.get("type", "")


def docs(request):
    """Every endpoint of the REST API with its parameters, body and answers — no CDN, no script."""
    schema = _schema()
    endpoints = []
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            responses = []
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {}).get("schema")
                responses.append(
                    {
                        "code": code,
                        "schema": _ref_name(content) if content else "",
                        "description": response.get("description", ""),
                    }
                )
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("description", "").strip(),
                    "parameters": op.get("parameters", []),
                    "body": _ref_name(body) if body else "",
                    "responses": responses,
                    "anchor": op.get("operationId", ""),
                }
            )
    components = sorted(schema.get("components", {}).get("schemas", {}).items())
    return render(
        request,
        "api/docs.html",
        {
            "endpoints": endpoints,
            "components": components,
            "info": schema.get("info", {}),
            "schema_url": reverse("api:schema"),
        },
    )
