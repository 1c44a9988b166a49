"""Upstream failures -> taxonomy classes, and the boundary context manager that converts them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.classify import UpstreamHttpError, classify, error_identifiers, upstream_errors

E = ErrorClass

ANTHROPIC = [
    (400, "invalid_request_error", "max_tokens: too large", E.INVALID_REQUEST),
    (400, "invalid_request_error", "model: claude-x is not available in your region", E.REGION_MODEL_MISMATCH),
    (401, "authentication_error", "invalid x-api-key", E.PROVIDER_KEY_REJECTED),
    (402, "billing_error", "credit balance too low", E.QUOTA_EXCEEDED),
    (403, "permission_error", "no access", E.INSUFFICIENT_PERMISSIONS),
    (404, "not_found_error", "model: claude-nope", E.REGION_MODEL_MISMATCH),
    (413, "request_too_large", "too big", E.INVALID_REQUEST),
    (429, "rate_limit_error", "slow down", E.QUOTA_EXCEEDED),
    (500, "api_error", "Internal server error", E.UPSTREAM_UNAVAILABLE),
    (529, "overloaded_error", "Overloaded", E.UPSTREAM_UNAVAILABLE),
    (400, "overloaded_error", "Overloaded", E.UPSTREAM_UNAVAILABLE),  # an outage inside a 400
]


@pytest.mark.parametrize(("status", "kind", "message", "expected"), ANTHROPIC)
def test_anthropic_errors(status: int, kind: str, message: str, expected: ErrorClass) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    failure = UpstreamHttpError.from_body(status, body)
    assert failure.identifiers == (kind,)
    assert classify(failure.status, failure.identifiers, model_unavailable=failure.model_unavailable) is expected


OPENAI = [
    (400, "invalid_request_error", None, "bad", E.INVALID_REQUEST),
    (400, "invalid_request_error", "context_length_exceeded", "too long", E.INVALID_REQUEST),
    (400, "invalid_request_error", "model_not_found", "The model `x` does not exist", E.REGION_MODEL_MISMATCH),
    (401, "invalid_request_error", "invalid_api_key", "Incorrect API key", E.PROVIDER_KEY_REJECTED),
    (403, "invalid_request_error", "unsupported_country_region_territory", "no", E.REGION_MODEL_MISMATCH),
    (404, "invalid_request_error", "model_not_found", "The model does not exist", E.REGION_MODEL_MISMATCH),
    (429, "requests", "rate_limit_exceeded", "Rate limit", E.QUOTA_EXCEEDED),
    (429, "insufficient_quota", "insufficient_quota", "check billing", E.QUOTA_EXCEEDED),
    (500, "server_error", None, "sorry", E.UPSTREAM_UNAVAILABLE),
    (503, "server_error", "service_unavailable", "overloaded", E.UPSTREAM_UNAVAILABLE),
]


@pytest.mark.parametrize(("status", "kind", "code", "message", "expected"), OPENAI)
def test_openai_errors(status: int, kind: str, code: str | None, message: str, expected: ErrorClass) -> None:
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    failure = UpstreamHttpError.from_body(status, body)
    assert classify(failure.status, failure.identifiers, model_unavailable=failure.model_unavailable) is expected


GOOGLE = [
    (400, "INVALID_ARGUMENT", None, E.INVALID_REQUEST),
    (400, "INVALID_ARGUMENT", "API_KEY_INVALID", E.PROVIDER_KEY_REJECTED),
    (400, "FAILED_PRECONDITION", None, E.REGION_MODEL_MISMATCH),  # "User location is not supported"
    (401, "UNAUTHENTICATED", None, E.PROVIDER_KEY_REJECTED),
    (403, "PERMISSION_DENIED", None, E.INSUFFICIENT_PERMISSIONS),
    (404, "NOT_FOUND", None, E.REGION_MODEL_MISMATCH),
    (429, "RESOURCE_EXHAUSTED", None, E.QUOTA_EXCEEDED),
    (500, "INTERNAL", None, E.UPSTREAM_UNAVAILABLE),
    (503, "UNAVAILABLE", None, E.UPSTREAM_UNAVAILABLE),
    (504, "DEADLINE_EXCEEDED", None, E.UPSTREAM_UNAVAILABLE),
    (400, "UNAVAILABLE", None, E.UPSTREAM_UNAVAILABLE),
]


@pytest.mark.parametrize(("status", "name", "reason", "expected"), GOOGLE)
def test_google_errors(status: int, name: str, reason: str | None, expected: ErrorClass) -> None:
    error: dict[str, Any] = {"code": status, "message": "m", "status": name}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    failure = UpstreamHttpError.from_body(status, orjson.dumps({"error": error}))
    assert classify(failure.status, failure.identifiers, model_unavailable=failure.model_unavailable) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, E.INVALID_REQUEST), (401, E.PROVIDER_KEY_REJECTED), (402, E.QUOTA_EXCEEDED),
     (403, E.INSUFFICIENT_PERMISSIONS), (404, E.REGION_MODEL_MISMATCH), (408, E.UPSTREAM_UNAVAILABLE),
     (413, E.INVALID_REQUEST), (422, E.INVALID_REQUEST), (429, E.QUOTA_EXCEEDED), (500, E.UPSTREAM_UNAVAILABLE),
     (502, E.UPSTREAM_UNAVAILABLE), (503, E.UPSTREAM_UNAVAILABLE), (529, E.UPSTREAM_UNAVAILABLE),
     (None, E.UPSTREAM_UNAVAILABLE)],
)
def test_bare_status(status: int | None, expected: ErrorClass) -> None:
    """A body that is not JSON (a proxy's HTML page) still classifies by status."""
    failure = UpstreamHttpError.from_body(status, b"<html>Bad Gateway</html>")
    assert failure.identifiers == ()
    assert classify(failure.status, failure.identifiers) is expected


def test_identifiers_never_carry_free_text() -> None:
    payload = {"error": {"type": "this is the user's prompt echoed back", "code": "ok_code", "message": "secret"}}
    identifiers, message = error_identifiers(payload)
    assert identifiers == ("ok_code",)
    assert message == "secret"


def _convert(exc: BaseException) -> ByollmError:
    with pytest.raises(ByollmError) as caught, upstream_errors("openai", model="gpt-5"):
        raise exc
    assert caught.value.__cause__ is exc
    return caught.value


def test_context_manager_converts_http_errors_without_the_message() -> None:
    body = orjson.dumps({"error": {"message": "You said: my secret prompt", "type": "requests",
                                   "code": "rate_limit_exceeded"}})
    error = _convert(UpstreamHttpError.from_body(429, body, request_id="req_abc123"))
    assert error.error_class is E.QUOTA_EXCEEDED
    assert error.detail == "openai answered HTTP 429 (rate_limit_exceeded)"
    assert error.context == {"provider": "openai", "upstream_model": "gpt-5", "upstream_status": 429,
                             "upstream_error": "rate_limit_exceeded", "upstream_request_id": "req_abc123"}
    assert "secret" not in str(error.to_dict())


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError("read"), "timeout"),
        (aiohttp.ServerDisconnectedError(), "connection"),
        (aiohttp.ClientPayloadError("cut"), "connection"),
        (ConnectionResetError("reset by peer"), "connection"),
        (orjson.JSONDecodeError("bad", "{", 0), "malformed"),
    ],
)
def test_context_manager_converts_transport_errors(exc: BaseException, reason: str) -> None:
    error = _convert(exc)
    assert error.error_class is E.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] == reason
    assert error.error_class.fails_over


def test_context_manager_leaves_byollm_errors_and_cancellation_alone() -> None:
    original = ByollmError(E.INVALID_REQUEST, "tools.0: server tool")
    with pytest.raises(ByollmError) as caught, upstream_errors("openai", model="gpt-5"):
        raise original
    assert caught.value is original
    with pytest.raises(asyncio.CancelledError), upstream_errors("openai", model="gpt-5"):
        raise asyncio.CancelledError
