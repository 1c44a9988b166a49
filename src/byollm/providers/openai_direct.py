"""The direct OpenAI API: Chat Completions serving canonical (Anthropic Messages) requests, and the Responses
API passed through for callers of byollm's own ``/v1/responses`` (``providers/openai_responses.py``).

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

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from byollm.providers.base import CanonicalRequest, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import upstream_errors
from byollm.providers.direct_http import DirectHttp, api_key, json_object
from byollm.providers.http import HttpPool
from byollm.providers.openai_responses import (
    FAILED,
    ResponsesFrames,
    passthrough_body,
    response_to_canonical,
    responses_url,
)
from byollm.providers.sse import encode_sse
from byollm.providers.translate_openai import (
    OpenAIStreamToCanonical,
    canonical_to_openai_request,
    openai_response_to_canonical,
)

__all__ = ["OpenAIDirect", "estimate_openai_tokens"]

_PROVIDER = "openai"
_CHAT_ORIGIN = "openai"  # CanonicalRequest.origin_api of byollm's /v1/chat/completions
_RESPONSES_ORIGIN = "openai_responses"
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

    def passes_through(self, request: CanonicalRequest) -> bool:
        """A Chat Completions or Responses request goes to the same OpenAI API as the caller sent it."""
        return request.origin_api in (_CHAT_ORIGIN, _RESPONSES_ORIGIN) and request.raw_body is not None

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        if self.passes_through(call.request):
            if call.request.origin_api == _CHAT_ORIGIN:
                return await self._complete_chat(call)
            return await self._complete_responses(call)
        model = call.candidate.upstream_model_id
        request = canonical_to_openai_request(call.request.body, model)
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, _url(call), orjson.dumps(request), _headers(call))
            message = openai_response_to_canonical(json_object(raw, "a chat completion"), model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """Anthropic events translated from the ``chat.completion.chunk`` stream, read by
        :meth:`DirectHttp.translated_stream` (its timeouts; it must reach ``[DONE]`` or a ``finish_reason``)."""
        if self.passes_through(call.request):
            chat = call.request.origin_api == _CHAT_ORIGIN
            passing = self._stream_chat(call) if chat else self._stream_responses(call)
            async with aclosing(passing) as passed:
                async for event in passed:
                    yield event
            return
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

    async def _complete_chat(self, call: UpstreamCall) -> CompletedMessage:
        """The caller's Chat Completions body with the route's model id; the answer relayed as it came
        (``wire``) and read canonically only for usage and the request log."""
        model = call.candidate.upstream_model_id
        assert call.request.raw_body is not None
        body = dict(call.request.raw_body)
        body["model"] = model
        body.pop("stream", None)
        body.pop("stream_options", None)
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, _url(call), orjson.dumps(body), _headers(call))
            message = openai_response_to_canonical(json_object(raw, "a chat completion"), model)
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]), wire=raw)

    async def _stream_chat(self, call: UpstreamCall) -> AsyncGenerator[StreamEvent, None]:
        """The upstream's chunks as SSE frames (``wire``), each on the canonical events it means. Usage is
        always asked for (credits need it); when the caller did not ask, the usage-only chunk is not relayed.
        The front end writes the closing ``[DONE]``."""
        model = call.candidate.upstream_model_id
        assert call.request.raw_body is not None
        body = dict(call.request.raw_body)
        options = body.get("stream_options")
        caller_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        body.update(model=model, stream=True,
                    stream_options={**(options if isinstance(options, Mapping) else {}), "include_usage": True})
        translator = OpenAIStreamToCanonical(model)
        with upstream_errors(_PROVIDER, model=model):
            async with self._http.open_stream(call, _url(call), orjson.dumps(body), _headers(call)) as upstream:
                done = False
                async for message in upstream.messages:
                    if message.data == b"[DONE]":
                        done = True
                        break
                    chunk = json_object(message.data, "a chat completion chunk")
                    if "error" in chunk:
                        raise upstream.error(chunk)
                    frame = encode_sse(None, message.data)
                    if not caller_usage and not chunk.get("choices") and chunk.get("usage") is not None:
                        frame = b""
                    events = translator.feed(chunk)
                    if not events:
                        yield StreamEvent("openai.chunk", {}, wire=frame)
                    for index, event in enumerate(events):
                        yield StreamEvent(event["type"], event, wire=frame if index == len(events) - 1 else b"")
                if not (done or translator.finished):
                    raise aiohttp.ClientPayloadError("the stream ended before a finish_reason")
                if done:
                    await upstream.drain()
                for event in translator.finish():
                    yield StreamEvent(event["type"], event, wire=b"")

    async def _complete_responses(self, call: UpstreamCall) -> CompletedMessage:
        model = call.candidate.upstream_model_id
        assert call.request.raw_body is not None
        body = passthrough_body(call.request.raw_body, model, stream=False)
        with upstream_errors(_PROVIDER, model=model):
            raw = await self._http.post(call, responses_url(call.base_url), body, _headers(call))
            message = response_to_canonical(json_object(raw, "a response"))
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message["usage"]), wire=raw)

    async def _stream_responses(self, call: UpstreamCall) -> AsyncGenerator[StreamEvent, None]:
        """The upstream's frames, each with its canonical meaning; an ``error`` or ``response.failed`` event
        raises, and a stream that ends before ``response.completed``/``response.incomplete`` was cut short."""
        model = call.candidate.upstream_model_id
        assert call.request.raw_body is not None
        body = passthrough_body(call.request.raw_body, model, stream=True)
        frames = ResponsesFrames()
        with upstream_errors(_PROVIDER, model=model):
            async with self._http.open_stream(call, responses_url(call.base_url), body, _headers(call)) as upstream:
                async for message in upstream.messages:
                    event = json_object(message.data, "a response event")
                    if event.get("type") in FAILED:
                        failure = event.get("response", {}).get("error") if "response" in event else event
                        raise upstream.error({"error": failure if isinstance(failure, Mapping) else {}})
                    kind, meaning = frames.meaning(event)
                    yield StreamEvent(kind, meaning, wire=encode_sse(str(event.get("type", kind)), message.data))
                    if frames.finished:
                        break
                if not frames.finished:
                    raise aiohttp.ClientPayloadError("the stream ended before response.completed")
                await upstream.drain()

    async def count_tokens(self, call: UpstreamCall) -> int:
        """A local estimate (no upstream call); see the module docstring."""
        return estimate_openai_tokens(canonical_to_openai_request(call.request.body, call.candidate.upstream_model_id))
