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

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from byollm.providers.base import CanonicalRequest, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.classify import upstream_errors
from byollm.providers.direct_http import DirectHttp, api_key, token_count
from byollm.providers.http import HttpPool

__all__ = ["AnthropicDirect"]

_PROVIDER = "anthropic"
_COUNT_FIELDS = frozenset({"messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})


def _headers(call: UpstreamCall) -> dict[str, str]:
    headers = {
        "x-api-key": api_key(call, _PROVIDER),
        "anthropic-version": call.request.anthropic_version,
        "content-type": "application/json",
    }
    if call.request.anthropic_beta:
        headers["anthropic-beta"] = ",".join(call.request.anthropic_beta)
    return headers


def _url(call: UpstreamCall, path: str) -> str:
    return call.base_url.rstrip("/").removesuffix("/v1") + path


class AnthropicDirect:
    """``Provider`` for ``api.anthropic.com`` (or anything speaking its Messages API, like the simulator).

    ``call.base_url`` is the API root without ``/v1`` (``https://api.anthropic.com``).
    """

    def __init__(self, pool: HttpPool) -> None:
        self._http = DirectHttp(pool, request_id_header="request-id")

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
        with upstream_errors(_PROVIDER, model=call.candidate.upstream_model_id):
            body = self._body(call, stream=False)
            raw = await self._http.post(call, _url(call, "/v1/messages"), body, _headers(call))
            message = orjson.loads(raw)
            if not isinstance(message, dict) or message.get("type") != "message":
                raise ValueError("not an Anthropic message")
        return CompletedMessage(message=message, usage=Usage.from_anthropic(message.get("usage")), raw=raw)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        """The upstream's events as they arrive, ``ping`` included; ``event: error`` raises.

        The first bytes must come within ``call.timeout_s``, each later chunk within ``read_timeout_s``.
        A stream that ends before ``message_stop`` fails as ``upstream_unavailable``.
        """
        with upstream_errors(_PROVIDER, model=call.candidate.upstream_model_id):
            url, body = _url(call, "/v1/messages"), self._body(call, stream=True)
            async with self._http.open_stream(call, url, body, _headers(call)) as upstream:
                done = False
                async for message in upstream.messages:
                    data: Mapping[str, Any] = orjson.loads(message.data)
                    if not isinstance(data, dict):
                        raise ValueError("an event that is not a JSON object")
                    kind = str(data.get("type") or message.event or "")
                    if kind == "error":
                        raise upstream.error(data)
                    if kind == "message_stop":
                        await upstream.drain()  # so the connection returns to the pool
                        done = True
                    yield StreamEvent(kind, data, raw=message.data)
                    if done:
                        break
                if not done:
                    raise aiohttp.ClientPayloadError("the stream ended before message_stop")

    def passes_through(self, request: CanonicalRequest) -> bool:
        """Always served from the canonical body (for the Anthropic API that is the caller's own body)."""
        return False

    async def count_tokens(self, call: UpstreamCall) -> int:
        """``/v1/messages/count_tokens`` with only the fields that endpoint accepts."""
        model = call.candidate.upstream_model_id
        body = {k: v for k, v in call.request.body.items() if k in _COUNT_FIELDS}
        body["model"] = model
        with upstream_errors(_PROVIDER, model=model):
            url = _url(call, "/v1/messages/count_tokens")
            raw = await self._http.post(call, url, orjson.dumps(body), _headers(call))
            return token_count(raw, "input_tokens", "count_tokens")
