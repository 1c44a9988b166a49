"""The direct Anthropic Messages API: the canonical format's home, so a pass-through.

The body goes out as the caller sent it except for ``model`` (the route's upstream id) and ``stream``;
answers come back untouched: a complete message keeps its JSON bytes in ``CompletedMessage.raw`` and each
streamed event keeps its ``data`` bytes in ``StreamEvent.raw``, so the gateway can forward them without
serialising again. Events are still parsed (with orjson) because the gateway needs their type and usage.

Headers are built from nothing: ``x-api-key`` (the route's key), ``anthropic-version`` and
``anthropic-beta`` from the canonical request, ``content-type``. Nothing the client sent to byollm is
forwarded, so its byollm token, AWS credentials or a key meant for another provider cannot leak here.
``UpstreamCall.extra_headers`` is not sent to direct providers for the same reason.
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

__all__ = ["AnthropicDirect"]

_PROVIDER = "anthropic"
_COUNT_FIELDS = frozenset({"messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})


def _api_key(call: UpstreamCall) -> str:
    if not isinstance(call.auth, ApiKeyAuth):
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "the anthropic route was given no API key", provider=_PROVIDER)
    return call.auth.api_key


def _headers(call: UpstreamCall) -> dict[str, str]:
    headers = {
        "x-api-key": _api_key(call),
        "anthropic-version": call.request.anthropic_version,
        "content-type": "application/json",
    }
    if call.request.anthropic_beta:
        headers["anthropic-beta"] = ",".join(call.request.anthropic_beta)
    return headers


def _url(call: UpstreamCall, path: str) -> str:
    return call.base_url.rstrip("/").removesuffix("/v1") + path


def _request_id(response: aiohttp.ClientResponse) -> str | None:
    return response.headers.get("request-id")


class AnthropicDirect:
    """``Provider`` for ``api.anthropic.com`` (or anything speaking its Messages API, like the simulator).

    ``call.base_url`` is the API root without ``/v1`` (``https://api.anthropic.com``).
    """

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    def _body(self, call: UpstreamCall, *, stream: bool) -> bytes:
        body: dict[str, Any] = dict(call.request.body)
        body["model"] = call.candidate.upstream_model_id
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return orjson.dumps(body)

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        """One message; the whole exchange is bounded by ``call.timeout_s``."""
        model = call.candidate.upstream_model_id
        with upstream_errors(_PROVIDER, model=model):
            async with self._pool.session.post(
                _url(call, "/v1/messages"), data=self._body(call, stream=False), headers=_headers(call),
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
            message = orjson.loads(raw)
            if not isinstance(message, dict) or message.get("type") != "message":
                raise ValueError("not an Anthropic message")
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message.get("usage")), raw=raw)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """The upstream's events as they arrive, ``ping`` included; ``event: error`` raises.

        The first bytes must come within ``call.timeout_s``, each later chunk within ``read_timeout_s``.
        A stream that ends before ``message_stop`` fails as ``upstream_unavailable``.
        """
        model = call.candidate.upstream_model_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.timeout_s
        with upstream_errors(_PROVIDER, model=model):
            async with asyncio.timeout_at(deadline):
                response = await self._pool.session.post(
                    _url(call, "/v1/messages"), data=self._body(call, stream=True), headers=_headers(call),
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
                        data: Mapping[str, Any] = orjson.loads(message.data)
                        if not isinstance(data, dict):
                            raise ValueError("an event that is not a JSON object")
                        kind = str(data.get("type") or message.event or "")
                        if kind == "error":
                            raise UpstreamHttpError.from_body(None, data, _request_id(response))
                        if kind == "message_stop":
                            await drain(response)  # so the connection returns to the pool
                            done = True
                        yield StreamEvent(kind, data, raw=message.data)
                        if done:
                            break
                if not done:
                    raise aiohttp.ClientPayloadError("the stream ended before message_stop")
            finally:
                response.release()

    async def count_tokens(self, call: UpstreamCall) -> int:
        """``/v1/messages/count_tokens`` with only the fields that endpoint accepts."""
        model = call.candidate.upstream_model_id
        body = {k: v for k, v in call.request.body.items() if k in _COUNT_FIELDS}
        body["model"] = model
        with upstream_errors(_PROVIDER, model=model):
            async with self._pool.session.post(
                _url(call, "/v1/messages/count_tokens"), data=orjson.dumps(body), headers=_headers(call),
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise UpstreamHttpError.from_body(response.status, raw, _request_id(response))
            counted = orjson.loads(raw)
            tokens = counted.get("input_tokens") if isinstance(counted, dict) else None
            if not isinstance(tokens, int):
                raise ValueError("count_tokens answered without input_tokens")
        return tokens
