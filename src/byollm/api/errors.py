"""Render taxonomy errors in the shape of the API the caller used.

One place decides the shape: ``/v1/messages*`` gets Anthropic's error JSON, ``/v1/chat/completions``,
``/v1/responses`` and ``/v1/models`` OpenAI's, everything else byollm's own. Every shape carries the taxonomy code, the
remediation and the request id. Anything unclassified becomes ``internal_error`` with only the request id:
a raw exception text or upstream body never reaches a caller.

This module also documents those shapes in the OpenAPI document (``error_responses``), so the document and
the renderer cannot drift apart; ``tests/fuzz`` holds every answer the server gives to what is declared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["ApiShape", "error_body", "error_responses", "install_error_handlers", "shape_for_path"]

log = logging.getLogger("byollm.api")


class ApiShape:
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    BYOLLM = "byollm"


def shape_for_path(path: str) -> str:
    if path.startswith("/v1/messages"):
        return ApiShape.ANTHROPIC
    if path.startswith(("/v1/chat/", "/v1/models", "/v1/completions", "/v1/responses")):
        return ApiShape.OPENAI
    return ApiShape.BYOLLM


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


# --- the shapes, as documented in the OpenAPI document ----------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Doc):
    """The taxonomy fields every error shape carries (``ByollmError.to_dict`` plus the request id)."""

    code: str = Field(description="The stable taxonomy code.",
                      json_schema_extra={"enum": [member.code for member in ErrorClass]})
    message: str
    remediation: str = Field(description="What the caller (or an admin) does to fix it.")
    request_id: str
    context: dict[str, Any] = Field(default_factory=dict, description="Identifiers only; never a secret.")


class ByollmErrorBody(_Doc):
    """byollm's own error shape (admin API, runs, doctor, IAM help)."""

    error: ErrorInfo


class AnthropicErrorDetail(_Doc):
    type: str
    message: str
    byollm: ErrorInfo


class AnthropicErrorBody(_Doc):
    """Anthropic's error shape (``/v1/messages*``), with byollm's taxonomy fields under ``error.byollm``."""

    type: str = Field(json_schema_extra={"const": "error"})
    error: AnthropicErrorDetail
    request_id: str


class OpenAIErrorDetail(_Doc):
    message: str
    type: str
    param: None = None
    code: str
    byollm: ErrorInfo


class OpenAIErrorBody(_Doc):
    """OpenAI's error shape (``/v1/chat/completions``, ``/v1/models``), taxonomy fields under ``error.byollm``."""

    error: OpenAIErrorDetail


_BODY_MODELS: dict[str, type[BaseModel]] = {
    ApiShape.BYOLLM: ByollmErrorBody,
    ApiShape.ANTHROPIC: AnthropicErrorBody,
    ApiShape.OPENAI: OpenAIErrorBody,
}

# what any request can meet before its handler runs: a malformed parameter or body (400), no or a bad token
# (401), a body over the limit (413), too many failed token attempts from this address (429)
AT_THE_DOOR = (400, 401, 413, 429)


def error_responses(shape: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the taxonomy errors an operation can answer with, in ``shape``.

    Each entry's description names the taxonomy codes that use its status, derived from ``ErrorClass`` so a
    new class is documented where its status already is.
    """
    entries: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        codes = [member.code for member in ErrorClass if member.status == status]
        entries[status] = {"model": _BODY_MODELS[shape],
                           "description": "Error (taxonomy code: " + ", ".join(codes or ["invalid_request"]) + ")"}
    return entries


def error_body(error: ByollmError, shape: str, request_id: str) -> dict[str, Any]:
    info = error.to_dict()
    info["request_id"] = request_id
    if shape == ApiShape.ANTHROPIC:
        return {
            "type": "error",
            "error": {
                "type": _ANTHROPIC_TYPES.get(error.status, "api_error"),
                "message": f"{error.detail} ({error.error_class.code}). {error.error_class.remediation}",
                "byollm": info,
            },
            "request_id": request_id,
        }
    if shape == ApiShape.OPENAI:
        return {
            "error": {
                "message": f"{error.detail} ({error.error_class.code}). {error.error_class.remediation}",
                "type": _ANTHROPIC_TYPES.get(error.status, "api_error"),
                "param": None,
                "code": error.error_class.code,
                "byollm": info,
            }
        }
    return {"error": info}


def render(request: Request, error: ByollmError) -> Response:
    rid = request_id_of(request.scope)
    body = error_body(error, shape_for_path(request.url.path), rid)
    headers = {"x-byollm-error-code": error.error_class.code}
    # the official SDKs honour this header over the status code: "true" makes them retry even a 424 whose
    # routes all failed for a passing reason
    headers["x-should-retry"] = "true" if error.retryable else "false"
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json", headers=headers)


_HTTP_CLASSES = {
    400: ErrorClass.INVALID_REQUEST,
    401: ErrorClass.UNAUTHENTICATED,
    403: ErrorClass.FORBIDDEN,
    404: ErrorClass.NOT_FOUND,
    405: ErrorClass.INVALID_REQUEST,
    409: ErrorClass.CONFLICT,
    413: ErrorClass.INVALID_REQUEST,
    422: ErrorClass.INVALID_REQUEST,
}


def install_error_handlers(app: Any) -> None:
    """Register the handlers on a Starlette/FastAPI app (kept here so the shapes live in one module)."""
    from fastapi.exceptions import RequestValidationError

    async def on_byollm(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ByollmError)
        return render(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return render(request, ByollmError(ErrorClass.INVALID_REQUEST, problems or "invalid request body"))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error_class = _HTTP_CLASSES.get(exc.status_code, ErrorClass.INVALID_REQUEST)
        error = ByollmError(error_class, str(exc.detail) if exc.status_code != 404 else "no such resource")
        response = render(request, error)
        if exc.status_code in (405, 413):
            response.status_code = exc.status_code
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        rid = request_id_of(request.scope)
        log.error("unhandled error in %s %s (request %s): %s", request.method, request.url.path, rid,
                  type(exc).__name__)
        return render(request, ByollmError(ErrorClass.INTERNAL_ERROR, f"internal error; request id {rid}"))

    _document_validation_as_invalid_request(app)
    app.add_exception_handler(ByollmError, on_byollm)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _document_validation_as_invalid_request(app: Any) -> None:
    """Drop the 422 ``HTTPValidationError`` FastAPI documents on every operation with parameters or a body.

    Why: ``on_validation`` answers those failures as ``invalid_request`` (400, in the caller's shape), so a 422
    is never sent; the operations declare their 400 through ``error_responses`` instead.
    """
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        document = build()
        if first:
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
                    if "HTTPValidationError" in str(responses.get("422", {})):
                        del responses["422"]
            schemas = document.get("components", {}).get("schemas", {})
            if "HTTPValidationError" not in str(document.get("paths")):
                schemas.pop("HTTPValidationError", None)
                schemas.pop("ValidationError", None)
        return document

    app.openapi = openapi
