"""The simulated Anthropic Messages API (``/v1/messages`` and ``/v1/messages/count_tokens``).

Mounted under ``/anthropic`` so the official SDK works with ``base_url=<sim>/anthropic``. What the
SDK can observe is reproduced: the API key (``x-api-key``, or ``Authorization: Bearer`` as recent SDKs
send it) checked against the world's keys, ``anthropic-version`` required, the error JSON
``{"type": "error", "error": {"type", "message"}}`` with Anthropic's status codes, a ``request-id``
header on every answer, and SSE streams with the real ``event:`` names (including ``ping`` and a
mid-stream ``event: error`` when a fault says so). The answers come from :mod:`byollm.sim.engine`,
tagged ``[anthropic:<model>]``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from byollm.sim import engine
from byollm.sim.faults import Fault, break_off_stream, with_transport_fault

if TYPE_CHECKING:
    from byollm.sim.state import SimState

__all__ = ["ANTHROPIC_MODELS", "anthropic_routes"]

ANTHROPIC_MODELS: tuple[str, ...] = (
    "claude-opus-4-7",
    "claude-sonnet-4-6",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1-20250805",
)

_SERVICE = "anthropic"
_STATUS_BY_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_TYPE_BY_STATUS: Mapping[int, str] = {status: kind for kind, status in _STATUS_BY_TYPE.items()}
_DEFAULT_MESSAGES: Mapping[str, str] = {
    "rate_limit_error": "Number of requests has exceeded your rate limit. Please try again later.",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}


class AnthropicError(Exception):
    """An error the API answers with; ``kind`` is Anthropic's error ``type``."""

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status or _STATUS_BY_TYPE.get(kind, 500)

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}}


def anthropic_routes(state: SimState) -> list[BaseRoute]:
    """Routes to mount under ``/anthropic``; they share ``state`` and nothing else."""
    api = _AnthropicApi(state)
    return [
        Route("/v1/messages", api.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"]),
    ]


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _error_response(error: AnthropicError, request_id: str) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={"request-id": request_id})


def _fault_error(fault: Fault) -> AnthropicError:
    """Turn a fault's error name (or bare status) into the error Anthropic would send."""
    kind = fault.error or _TYPE_BY_STATUS.get(fault.status or 500, "api_error")
    message = fault.message or _DEFAULT_MESSAGES.get(kind, kind.replace("_", " ").capitalize())
    return AnthropicError(kind, message, status=fault.status or _STATUS_BY_TYPE.get(kind, 500))


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


async def _read_json(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class _AnthropicApi:
    """Request handlers; one instance per mounted app so state is never global."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    async def messages(self, request: Request) -> Response:
        request_id = _new_id("req_011C")
        fault: Fault | None = None
        try:
            body = await self._admit(request)
            model = str(body["model"])
            stream = body.get("stream") is True
            try:
                reply = engine.reply_to(body, service=_SERVICE, model=model)
            except engine.InvalidRequestError as exc:
                raise AnthropicError("invalid_request_error", str(exc)) from exc
            fault = self._state.faults.take(_SERVICE, model=model, streaming=stream)
            if fault is not None and fault.error is not None and fault.after_events is None:
                raise _fault_error(fault)
        except AnthropicError as exc:
            return with_transport_fault(fault, _error_response(exc, request_id))
        message_id = _new_id("msg_01")
        ttft, per_token = self._state.latency(_SERVICE, model)
        headers = {"request-id": request_id}
        if stream:
            events = engine.anthropic_stream_events(reply, model=model, message_id=message_id)
            response: Response = StreamingResponse(
                self._stream(events, fault, ttft, per_token),
                media_type="text/event-stream; charset=utf-8",
                headers={**headers, "cache-control": "no-cache"},
            )
            return with_transport_fault(fault, response)
        await asyncio.sleep(ttft + per_token * reply.output_tokens)
        message = engine.anthropic_message(reply, model=model, message_id=message_id)
        return with_transport_fault(fault, JSONResponse(message, headers=headers))

    async def count_tokens(self, request: Request) -> Response:
        request_id = _new_id("req_011C")
        fault: Fault | None = None
        try:
            body = await self._admit(request)
            try:
                engine.validate_messages_body({**body, "max_tokens": 1})
            except engine.InvalidRequestError as exc:
                raise AnthropicError("invalid_request_error", str(exc)) from exc
            fault = self._state.faults.take(_SERVICE, model=str(body["model"]), streaming=False)
            if fault is not None and fault.error is not None:
                raise _fault_error(fault)
        except AnthropicError as exc:
            return with_transport_fault(fault, _error_response(exc, request_id))
        counted = JSONResponse({"input_tokens": engine.count_input_tokens(body)}, headers={"request-id": request_id})
        return with_transport_fault(fault, counted)

    async def _admit(self, request: Request) -> dict[str, Any]:
        """Check the key, the version header, the JSON body and the model, in Anthropic's order."""
        api_key = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization", ""))
        if not api_key:
            raise AnthropicError("authentication_error", "x-api-key header is required")
        if api_key not in self._state.provider_keys(_SERVICE):
            raise AnthropicError("authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise AnthropicError("invalid_request_error", "anthropic-version: header is required")
        body = await _read_json(request)
        if body is None:
            raise AnthropicError("invalid_request_error", "The request body is not valid JSON")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise AnthropicError("invalid_request_error", "model: Field required")
        if model not in ANTHROPIC_MODELS:
            raise AnthropicError("not_found_error", f"model: {model}")
        return body

    async def _stream(
        self, events: list[dict[str, Any]], fault: Fault | None, ttft: float, per_token: float
    ) -> AsyncIterator[bytes]:
        """Send the events at the model's pace; break off after K events when a fault says so."""
        await asyncio.sleep(ttft)
        for sent, event in enumerate(events):
            if fault is not None and fault.after_events is not None and sent >= fault.after_events:
                if not await break_off_stream(fault):  # then end with an error event
                    yield _sse(_fault_error(fault).body())
                return
            text = _delta_text(event)
            if text and per_token:
                await asyncio.sleep(per_token * engine.count_text_tokens(text))
            yield _sse(event)
            if event["type"] == "content_block_start" and event["index"] == 0:
                yield _sse({"type": "ping"})


def _bearer(header: str) -> str | None:
    """Recent SDKs send the API key as ``Authorization: Bearer``; the API accepts either header."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _delta_text(event: Mapping[str, Any]) -> str:
    delta = event.get("delta") or {}
    return str(delta.get("text") or delta.get("partial_json") or "")
