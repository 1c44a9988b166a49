"""The direct Gemini API (``generativelanguage.googleapis.com``), serving canonical requests.

``models/{model}:generateContent`` for complete answers, ``:streamGenerateContent?alt=sse`` for streams
(one :class:`GeminiStreamToCanonical` per call) and ``:countTokens`` for counting (Gemini counts the
translated prompt itself, so no estimate is needed). The key goes in the ``x-goog-api-key`` header, never
in the ``key`` query parameter, because URLs end up in logs; headers are built from nothing and
``UpstreamCall.extra_headers`` is not sent, so nothing the client sent to byollm can be forwarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from urllib.parse import quote

import aiohttp
import orjson

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.base import ApiKeyAuth, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import UpstreamHttpError, timed_chunks, upstream_errors
from byollm.providers.http import HttpPool
from byollm.providers.sse import iter_sse
from byollm.providers.translate_gemini import (
    GeminiStreamToCanonical,
    canonical_to_gemini_count_request,
    canonical_to_gemini_request,
    gemini_response_to_canonical,
)

__all__ = ["GoogleDirect"]

_PROVIDER = "google"


def _headers(call: UpstreamCall) -> dict[str, str]:
    if not isinstance(call.auth, ApiKeyAuth):
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "the google route was given no API key", provider=_PROVIDER)
    return {"x-goog-api-key": call.auth.api_key, "content-type": "application/json"}


def _url(call: UpstreamCall, action: str) -> str:
    """``base_url`` is the API root (``https://generativelanguage.googleapis.com``), or that root with a
    version (``…/v1beta``), which is then kept."""
    base = call.base_url.rstrip("/")
    if not (base.endswith("/v1beta") or base.endswith("/v1")):
        base += "/v1beta"
    model = quote(call.candidate.upstream_model_id.removeprefix("models/"), safe="-._~")
    return f"{base}/models/{model}:{action}"


def _request_id(response: aiohttp.ClientResponse) -> str | None:
    return response.headers.get("x-request-id")


class GoogleDirect:
    """``Provider`` for the Gemini API (or the simulator's ``/google``)."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_request(call.request.body)
        with upstream_errors(_PROVIDER, model=model):
            async with self._pool.session.post(
                _url(call, "generateContent"), data=orjson.dumps(request), headers=_headers(call),
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
            answer = orjson.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError("not a GenerateContentResponse")
            message = gemini_response_to_canonical(answer, model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """Anthropic events translated from the SSE stream; an ``{"error": …}`` chunk raises.

        The first bytes must come within ``call.timeout_s``, each later chunk within ``read_timeout_s``;
        a stream that ends before a ``finishReason`` fails as ``upstream_unavailable``.
        """
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_request(call.request.body)
        translator = GeminiStreamToCanonical(model)
        deadline = asyncio.get_running_loop().time() + call.timeout_s
        with upstream_errors(_PROVIDER, model=model):
            async with asyncio.timeout_at(deadline):
                response = await self._pool.session.post(
                    _url(call, "streamGenerateContent") + "?alt=sse", data=orjson.dumps(request),
                    headers=_headers(call), timeout=aiohttp.ClientTimeout(total=None),
                )
            try:
                if response.status != 200:
                    async with asyncio.timeout_at(deadline):
                        raw = await response.read()
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
                chunks = timed_chunks(response, first_deadline=deadline, read_timeout_s=call.read_timeout_s)
                async with aclosing(iter_sse(chunks)) as messages:
                    async for message in messages:
                        chunk = orjson.loads(message.data)
                        if not isinstance(chunk, dict):
                            raise ValueError("not a GenerateContentResponse")
                        if "error" in chunk:
                            raise UpstreamHttpError.from_body(None, chunk, _request_id(response))
                        for event in translator.feed(chunk):
                            yield StreamEvent(event["type"], event)
                if not translator.finished:
                    raise aiohttp.ClientPayloadError("the stream ended before a finishReason")
                for event in translator.finish():
                    yield StreamEvent(event["type"], event)
            finally:
                response.release()

    async def count_tokens(self, call: UpstreamCall) -> int:
        """Gemini's own ``countTokens`` for the translated prompt."""
        model = call.candidate.upstream_model_id
        request = canonical_to_gemini_count_request(call.request.body, model.removeprefix("models/"))
        with upstream_errors(_PROVIDER, model=model):
            async with self._pool.session.post(
                _url(call, "countTokens"), data=orjson.dumps(request), headers=_headers(call),
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
            counted = orjson.loads(raw)
            tokens = counted.get("totalTokens") if isinstance(counted, dict) else None
            if not isinstance(tokens, int):
                raise ValueError("countTokens answered without totalTokens")
        return tokens
