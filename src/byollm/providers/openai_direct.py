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

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from byollm.providers.base import CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import upstream_errors
from byollm.providers.direct_http import DirectHttp, api_key, json_object
from byollm.providers.http import HttpPool
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
    return {"authorization": f"Bearer {api_key(call, _PROVIDER)}", "content-type": "application/json"}


def _url(call: UpstreamCall) -> str:
    """``base_url`` may be the API root (``https://api.openai.com``) or, as OpenAI's SDK has it, ``…/v1``."""
    base = call.base_url.rstrip("/")
    return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")


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
        self._http = DirectHttp(pool, request_id_header="x-request-id")

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        model = call.candidate.upstream_model_id
        request = canonical_to_openai_request(call.request.body, model)
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, _url(call), orjson.dumps(request), _headers(call))
            message = openai_response_to_canonical(json_object(raw, "a chat completion"), model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """Anthropic events translated from the ``chat.completion.chunk`` stream, read by
        :meth:`DirectHttp.translated_stream` (its timeouts; it must reach ``[DONE]`` or a ``finish_reason``)."""
        model = call.candidate.upstream_model_id
        request = canonical_to_openai_request(call.request.body, model, stream=True)
        translator = OpenAIStreamToCanonical(model)
        with upstream_errors(_PROVIDER, model=model):
            events = self._http.translated_stream(
                call, _url(call), orjson.dumps(request), _headers(call), translator,
                chunk_name="a chat completion chunk", finish_name="a finish_reason", done_marker=b"[DONE]",
            )
            async with aclosing(events):
                async for event in events:
                    yield event

    async def count_tokens(self, call: UpstreamCall) -> int:
        """A local estimate (no upstream call); see the module docstring."""
        return estimate_openai_tokens(canonical_to_openai_request(call.request.body, call.candidate.upstream_model_id))
