"""The OpenAI Responses API front end (``POST /v1/responses``), plain and streamed, with tools.

The request is read into the canonical form (``providers/translate_responses.py``) and remembers its origin
and body as sent: an OpenAI route forwards the caller's own body to OpenAI's Responses API and its answer
comes back as OpenAI sent it (``wire``); any other route serves the canonical form and its answer is
rendered here as a Response object or as the typed Responses events. Errors before the answer use OpenAI's
error JSON with byollm's taxonomy (``api/errors``); a failure after the stream started is the Responses
API's ``error`` event carrying the same message and the taxonomy code, then ``response.failed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson

from byollm.api.errors import ApiShape, error_body
from byollm.api.frontends.anthropic_messages import route_request
from byollm.api.frontends.base import ParsedRequest, RequestMeta, credits_trailer
from byollm.api.frontends.fields import invalid
from byollm.errors import ByollmError
from byollm.gateway.executor import Served, ServedStream, StreamFailure
from byollm.providers.base import CanonicalRequest
from byollm.providers.sse import encode_sse
from byollm.providers.translate_responses import (
    CanonicalStreamToResponses,
    canonical_to_response,
    responses_request_to_canonical,
)

__all__ = ["OPENAI_RESPONSES", "ORIGIN_API", "OpenAIResponses"]

ORIGIN_API = "openai_responses"


class OpenAIResponses:
    """``ClientApi`` for OpenAI Responses. Its requests are logged under the ``openai`` API family (the
    request log's API column knows two); ``CanonicalRequest.origin_api`` tells the adapters which."""

    api = "openai"
    error_shape = ApiShape.OPENAI

    def parse(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise invalid("model", "a model name (or \"auto\") is required")
        translated = responses_request_to_canonical(body)
        stream = body.get("stream") is True
        canonical = CanonicalRequest(body=translated.body, stream=stream, request_id=meta.request_id,
                                     team_uid=meta.team_uid, origin_api=ORIGIN_API, raw_body=body,
                                     lost=translated.lost)
        return ParsedRequest(canonical=canonical, route=route_request(translated.body, size, stream),
                             model=str(body["model"]), options={"custom_tools": translated.custom_tools})

    def parse_input_tokens(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        """A ``/v1/responses/input_tokens`` body: the request as it would be sent, never streamed; what only
        OpenAI could honour in the answer (an output format) does not change the input's size, so no route
        is skipped for it."""
        parsed = self.parse({**body, "stream": False}, size, meta)
        return replace(parsed, canonical=replace(parsed.canonical, lost=()))

    def render(self, served: Served, parsed: ParsedRequest, request_id: str) -> bytes:
        answer = served.value
        if answer.wire is not None:
            return bytes(answer.wire)
        raw = parsed.canonical.raw_body or {}
        return orjson.dumps(canonical_to_response(answer.message, raw, request_id, parsed.options["custom_tools"]))

    async def render_stream(self, opened: ServedStream, parsed: ParsedRequest, request_id: str
                            ) -> AsyncIterator[bytes]:
        """The upstream's own frames on a pass-through, else translated; the events read before the gateway
        committed go out in one write."""
        translator = CanonicalStreamToResponses(parsed.canonical.raw_body or {}, request_id,
                                                parsed.options["custom_tools"])
        pending: list[bytes] = []
        seen = 0
        async for event in opened.events:
            seen += 1
            if isinstance(event, StreamFailure):
                frames = self._stream_error(event.error, request_id, translator)
            elif event.wire is not None:
                frames = event.wire
                translator.relayed()
            else:
                frames = b"".join(encode_sse(out["type"], orjson.dumps(out)) for out in translator.feed(event.data))
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
        yield credits_trailer(opened)

    @staticmethod
    def _stream_error(error: ByollmError, request_id: str, translator: CanonicalStreamToResponses) -> bytes:
        detail = error_body(error, ApiShape.OPENAI, request_id)["error"]
        events = translator.fail(error.error_class.code, str(detail["message"]))
        return b"".join(encode_sse(event["type"], orjson.dumps(event)) for event in events)

    def render_error(self, error: ByollmError, request_id: str) -> bytes:
        return orjson.dumps(error_body(error, ApiShape.OPENAI, request_id))


OPENAI_RESPONSES = OpenAIResponses()
