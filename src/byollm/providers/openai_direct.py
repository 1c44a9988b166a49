"""The direct OpenAI Chat Completions API, serving canonical (Anthropic Messages) requests.

The request is translated with :func:`canonical_to_openai_request` and the answer back with
:func:`openai_response_to_canonical`; a stream goes through one :class:`OpenAIStreamToCanonical` per
call. Headers are built from nothing (``Authorization: Bearer <the route's key>``, ``content-type``), so
nothing the client sent to byollm can be forwarded; ``UpstreamCall.extra_headers`` is not sent.

``count_tokens``: OpenAI has no counting endpoint, so this is a local estimate of the translated prompt:
one token per 4 characters of text (system, messages, tool arguments and results, tool specs as JSON),
plus 4 tokens per message and 800 per image or file. Good enough for routing and budget checks; billing
always uses the usage the answer reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.base import ApiKeyAuth, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import UpstreamHttpError, drain, timed_chunks, upstream_errors
from byollm.providers.http import HttpPool
from byollm.providers.sse import iter_sse
from byollm.providers.translate_openai import (
    OpenAIStreamToCanonical,
    canonical_to_openai_request,
    openai_response_to_canonical,
)

__all__ = ["OpenAIDirect", "estimate_openai_tokens"]

_PROVIDER = "openai"
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_ATTACHMENT = 800


def _headers(call: UpstreamCall) -> dict[str, str]:
    if not isinstance(call.auth, ApiKeyAuth):
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "the openai route was given no API key", provider=_PROVIDER)
    return {"authorization": f"Bearer {call.auth.api_key}", "content-type": "application/json"}


def _url(call: UpstreamCall) -> str:
    """``base_url`` may be the API root (``https://api.openai.com``) or, as OpenAI's SDK has it, ``…/v1``."""
    base = call.base_url.rstrip("/")
    return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")


def _request_id(response: aiohttp.ClientResponse) -> str | None:
    return response.headers.get("x-request-id")


def estimate_openai_tokens(request: Mapping[str, Any]) -> int:
    """The local prompt-size estimate described in the module docstring (a Chat Completions request)."""
    chars = 0
    attachments = 0
    messages = request.get("messages") or ()
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    chars += len(str(part.get("text", "")))
                else:
                    attachments += 1
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            chars += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    if request.get("tools"):
        chars += len(orjson.dumps(request["tools"]))
    estimate = -(-chars // _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)
    estimate += _TOKENS_PER_ATTACHMENT * attachments
    return max(estimate, 1)


class OpenAIDirect:
    """``Provider`` for ``api.openai.com`` (or anything speaking Chat Completions, like the simulator)."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        model = call.candidate.upstream_model_id
        request = canonical_to_openai_request(call.request.body, model)
        with upstream_errors(_PROVIDER, model=model):
            async with self._pool.session.post(
                _url(call), data=orjson.dumps(request), headers=_headers(call),
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
            answer = orjson.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError("not a chat completion")
            message = openai_response_to_canonical(answer, model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """Anthropic events translated from the chunk stream; an ``{"error": …}`` chunk raises.

        The first bytes must come within ``call.timeout_s``, each later chunk within ``read_timeout_s``;
        a stream that ends before a ``finish_reason`` fails as ``upstream_unavailable``.
        """
        model = call.candidate.upstream_model_id
        request = canonical_to_openai_request(call.request.body, model, stream=True)
        translator = OpenAIStreamToCanonical(model)
        deadline = asyncio.get_running_loop().time() + call.timeout_s
        with upstream_errors(_PROVIDER, model=model):
            async with asyncio.timeout_at(deadline):
                response = await self._pool.session.post(
                    _url(call), data=orjson.dumps(request), headers=_headers(call),
                    timeout=aiohttp.ClientTimeout(total=None),
                )
            try:
                if response.status != 200:
                    async with asyncio.timeout_at(deadline):
                        raw = await response.read()
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
                done = False
                chunks = timed_chunks(response, first_deadline=deadline, read_timeout_s=call.read_timeout_s)
                async with aclosing(iter_sse(chunks)) as messages:
                    async for message in messages:
                        if message.data == b"[DONE]":
                            done = True
                            break
                        chunk = orjson.loads(message.data)
                        if not isinstance(chunk, dict):
                            raise ValueError("not a chat completion chunk")
                        if "error" in chunk:
                            raise UpstreamHttpError.from_body(None, chunk, _request_id(response))
                        for event in translator.feed(chunk):
                            yield StreamEvent(event["type"], event)
                if not (done or translator.finished):
                    raise aiohttp.ClientPayloadError("the stream ended before a finish_reason")
                if done:
                    await drain(response)
                for event in translator.finish():
                    yield StreamEvent(event["type"], event)
            finally:
                response.release()

    async def count_tokens(self, call: UpstreamCall) -> int:
        """A local estimate (no upstream call); see the module docstring."""
        return estimate_openai_tokens(canonical_to_openai_request(call.request.body, call.candidate.upstream_model_id))
