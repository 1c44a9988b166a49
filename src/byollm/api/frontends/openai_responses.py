"""The OpenAI Responses API front end: ``POST /v1/responses``, plain and streamed, with tools.

Same door as the other inference endpoints (``inference_routes``: the byollm token, the team, delegated
AWS credentials, BYOK keys; the same gateway, so failover, credits, the request log and the ``x-byollm-*``
headers), in the Responses API's shapes. The request is read into the canonical form
(``providers/translate_responses.py``) and remembers its origin and raw body: an OpenAI route forwards the
caller's own body to OpenAI's Responses API and its answer comes back as OpenAI sent it (``wire``); any
other route serves the canonical form and its answer is rendered here as a Response object or as the
typed Responses events. Errors before the answer use OpenAI's error JSON with byollm's taxonomy
(``api/errors``); a failure after the stream started is OpenAI's ``error`` event with the taxonomy code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from byollm.api.auth import services_of
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.api.inference_routes import _context, _headers, _json_body, _route_request
from byollm.gateway.executor import InferenceContext, ServedStream
from byollm.providers.base import CanonicalRequest, StreamEvent
from byollm.providers.sse import encode_sse
from byollm.providers.translate_responses import (
    CanonicalStreamToResponses,
    TranslatedRequest,
    canonical_to_response,
    response_error_event,
    responses_request_to_canonical,
)

__all__ = ["ORIGIN_API", "router"]

router = APIRouter(tags=["inference"])

ORIGIN_API = "openai_responses"
_LOG_API = "openai"  # the request log's API column names the API family (its check constraint knows two)


def _sse(data: dict[str, Any]) -> dict[str, Any]:
    return {"text/event-stream": {"itemSchema": {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string"}, "data": data}}}}


_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string"}, "input": {"type": ["string", "array"]},
                       "instructions": {"type": "string"}, "stream": {"type": "boolean"},
                       "tools": {"type": "array"}, "max_output_tokens": {"type": "integer", "minimum": 1}},
    }}}},
    "responses": {"200": {"description": "A Response object, or its typed events as an event stream", "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["id", "object", "output", "model"],
            "properties": {"id": {"type": "string"}, "object": {"const": "response"}, "output": {"type": "array"},
                           "model": {"type": "string"}, "status": {"type": "string"}, "usage": {}},
        }}, **_sse({"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}})}}},
}
_ERRORS = error_responses(ApiShape.OPENAI, *AT_THE_DOOR, 402, 403, 404, 424, 503)


def _canonical(context: InferenceContext, translated: TranslatedRequest, raw: dict[str, Any], stream: bool
               ) -> CanonicalRequest:
    return CanonicalRequest(body=translated.body, stream=stream, request_id=context.request_id,
                            team_uid=context.team_uid, origin_api=ORIGIN_API, raw_body=raw, lost=translated.lost)


@router.post("/v1/responses", summary="OpenAI Responses API", openapi_extra=_SCHEMA, responses=_ERRORS)
async def responses(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, _LOG_API)
    raw, size = await _json_body(request)
    translated = responses_request_to_canonical(raw)
    stream = raw.get("stream") is True
    canonical = _canonical(context, translated, raw, stream)
    route_request = _route_request(translated.body, size, stream)
    if not stream:
        served = await services.gateway.complete(context, canonical, route_request)
        answer = served.value
        content = answer.wire if answer.wire is not None else orjson.dumps(
            canonical_to_response(answer.message, raw, context.request_id, translated.custom_tools))
        return Response(content, media_type="application/json", headers=_headers(served))
    opened = await services.gateway.stream(context, canonical, route_request)
    translator = CanonicalStreamToResponses(raw, context.request_id, translated.custom_tools)
    return StreamingResponse(_events(opened, translator), media_type="text/event-stream",
                             headers={**_headers(opened), "cache-control": "no-cache"})


async def _events(opened: ServedStream, translator: CanonicalStreamToResponses) -> AsyncIterator[bytes]:
    """The stream's frames: the upstream's own on a pass-through, else translated; the events read before
    the gateway committed go out in one write."""
    pending: list[bytes] = []
    seen = 0
    async for event in opened.events:
        seen += 1
        frames = _frames(event, translator)
        if seen < opened.preamble:
            pending.append(frames)
            continue
        if pending:
            frames = b"".join((*pending, frames))
            pending.clear()
        if frames:
            yield frames
    if pending:
        yield b"".join(pending)


def _frames(event: StreamEvent, translator: CanonicalStreamToResponses) -> bytes:
    if event.wire is not None:
        return event.wire
    if event.type == "error":
        error = event.data.get("error") or {}
        code = str((error.get("byollm") or {}).get("code") or "upstream_unavailable")
        failure = response_error_event(code, str(error.get("message", "")), translator.sequence_number)
        return encode_sse("error", orjson.dumps(failure))
    return b"".join(encode_sse(out["type"], orjson.dumps(out)) for out in translator.feed(event.data))
