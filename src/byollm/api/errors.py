"""Render taxonomy errors in the shape of the API the caller used.

One place decides the shape: ``/v1/messages*`` gets Anthropic's error JSON, ``/v1/chat/completions`` and
``/v1/models`` OpenAI's, everything else byollm's own. Every shape carries the taxonomy code, the
remediation and the request id. Anything unclassified becomes ``internal_error`` with only the request id:
a raw exception text or upstream body never reaches a caller.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["ApiShape", "error_body", "install_error_handlers", "shape_for_path"]

log = logging.getLogger("byollm.api")


class ApiShape:
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    BYOLLM = "byollm"


def shape_for_path(path: str) -> str:
    if path.startswith("/v1/messages"):
        return ApiShape.ANTHROPIC
    if path.startswith(("/v1/chat/", "/v1/models", "/v1/completions")):
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
    if not error.error_class.retryable:
        headers["x-should-retry"] = "false"  # the official SDKs honour this header
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

    app.add_exception_handler(ByollmError, on_byollm)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
