"""The direct Gemini API (``generativelanguage.googleapis.com``), serving canonical requests.

``models/{model}:generateContent`` for complete answers, ``:streamGenerateContent?alt=sse`` for streams
(one :class:`GeminiStreamToCanonical` per call) and ``:countTokens`` for counting (Gemini counts the
translated prompt itself, so no estimate is needed). The key goes in the ``x-goog-api-key`` header, never
in the ``key`` query parameter, because URLs end up in logs; headers are built from nothing and
``UpstreamCall.extra_headers`` is not sent, so nothing the client sent to byollm can be forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from urllib.parse import quote

import orjson

from byollm.providers.base import CanonicalRequest, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import upstream_errors
from byollm.providers.direct_http import DirectHttp, api_key, json_object, token_count
from byollm.providers.http import HttpPool
from byollm.providers.translate_gemini import (
    GeminiStreamToCanonical,
    canonical_to_gemini_count_request,
    canonical_to_gemini_request,
    gemini_response_to_canonical,
)

__all__ = ["GoogleDirect"]

_PROVIDER = "google"


def _headers(call: UpstreamCall) -> dict[str, str]:
    return {"x-goog-api-key": api_key(call, _PROVIDER), "content-type": "application/json"}


def _url(call: UpstreamCall, action: str) -> str:
    """``base_url`` is the API root (``https://generativelanguage.googleapis.com``), or that root with a
    version (``…/v1beta``), which is then kept."""
    base = call.base_url.rstrip("/")
    if not (base.endswith("/v1beta") or base.endswith("/v1")):
        base += "/v1beta"
    model = quote(call.candidate.upstream_model_id.removeprefix("models/"), safe="-._~")
    return f"{base}/models/{model}:{action}"


class GoogleDirect:
    """``Provider`` for the Gemini API (or the simulator's ``/google``)."""

    def __init__(self, pool: HttpPool) -> None:
        self._http = DirectHttp(pool, request_id_header="x-request-id")

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_request(call.request.body)
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, _url(call, "generateContent"), orjson.dumps(request), _headers(call))
            message = gemini_response_to_canonical(json_object(raw, "a GenerateContentResponse"), model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """Anthropic events translated from the ``alt=sse`` stream of ``GenerateContentResponse`` chunks, read
        by :meth:`DirectHttp.translated_stream` (its timeouts; it must reach a ``finishReason``)."""
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_request(call.request.body)
        translator = GeminiStreamToCanonical(model)
        with upstream_errors(_PROVIDER, model=model):
            events = self._http.translated_stream(
                call, _url(call, "streamGenerateContent") + "?alt=sse", orjson.dumps(request), _headers(call),
                translator, chunk_name="a GenerateContentResponse", finish_name="a finishReason",
            )
            async with aclosing(events):
                async for event in events:
                    yield event

    def passes_through(self, request: CanonicalRequest) -> bool:
        """Always served from the canonical body (for the Anthropic API that is the caller's own body)."""
        return False

    async def count_tokens(self, call: UpstreamCall) -> int:
        """Gemini's own ``countTokens`` for the translated prompt."""
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_count_request(call.request.body, model.removeprefix("models/"))
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, _url(call, "countTokens"), orjson.dumps(request), _headers(call))
            return token_count(raw, "totalTokens", "countTokens")
