"""The direct providers' HTTP exchange: a JSON request answered in full, or an SSE stream, fetched, bounded
and checked the same way for Anthropic, OpenAI and Gemini.

Why one module: the three APIs differ in URLs, headers, bodies and what their answers mean, but not in how
an answer is fetched. A request is JSON bytes POSTed on the shared pool; any status but 200 raises
:class:`UpstreamHttpError` with the body's error identifiers and the provider's request id; a complete
answer must arrive within ``call.timeout_s``; a stream's first bytes must arrive within ``call.timeout_s``
and each later chunk within ``call.read_timeout_s``; a finished stream is drained so that its connection
goes back to the pool. Adapters call all of this inside their own
:func:`~byollm.providers.classify.upstream_errors`, which turns whatever is raised here into taxonomy errors.

OpenAI's and Gemini's streams are also read the same way (JSON chunks, an ``{"error": …}`` chunk, a
translator to canonical events): :meth:`DirectHttp.translated_stream`. Anthropic's is a pass-through read
in its own adapter straight from :meth:`DirectHttp.open_stream`, with no extra step per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, Protocol

import aiohttp
import orjson

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.base import ApiKeyAuth, StreamEvent, UpstreamCall, WireClock
from byollm.providers.classify import UpstreamHttpError
from byollm.providers.http import HttpPool
from byollm.providers.sse import SseMessage, iter_sse

__all__ = [
    "DirectHttp",
    "SseStream",
    "StreamTranslator",
    "api_key",
    "drain",
    "json_object",
    "timed_chunks",
    "token_count",
]


def api_key(call: UpstreamCall, provider: str) -> str:
    """The route's API key; a direct route given anything else is a wiring bug, not an upstream failure."""
    if not isinstance(call.auth, ApiKeyAuth):
        raise ByollmError(ErrorClass.INTERNAL_ERROR, f"the {provider} route was given no API key", provider=provider)
    return call.auth.api_key


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` parsed; ``ValueError("not <what>")`` when it is not a JSON object."""
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"not {what}")
    return value


def token_count(raw: bytes, field: str, endpoint: str) -> int:
    """The integer ``field`` of a counting endpoint's answer; ``ValueError`` when it is missing."""
    counted = orjson.loads(raw)
    tokens = counted.get(field) if isinstance(counted, dict) else None
    if not isinstance(tokens, int):
        raise ValueError(f"{endpoint} answered without {field}")
    return tokens


async def timed_chunks(response: aiohttp.ClientResponse, *, first_deadline: float, read_timeout_s: float,
                       wire: WireClock | None = None) -> AsyncIterator[bytes]:
    """The response body as it arrives, bounded: the first bytes by ``first_deadline`` (a loop time), each
    later chunk within ``read_timeout_s`` of the previous one. Raises ``TimeoutError``.

    Each wait gets its own ``asyncio.timeout`` that never spans a ``yield``, so a slow consumer is not
    counted against the upstream and the timer never fires into another task.
    """
    content = response.content
    clock = wire or WireClock()
    began = time.perf_counter()
    async with asyncio.timeout_at(first_deadline):
        chunk = await content.readany()
    clock.seconds += time.perf_counter() - began
    loop = asyncio.get_running_loop()
    while chunk:
        yield chunk
        began = time.perf_counter()
        async with asyncio.timeout_at(loop.time() + read_timeout_s):
            chunk = await content.readany()
        clock.seconds += time.perf_counter() - began


async def drain(response: aiohttp.ClientResponse, timeout_s: float = 1.0) -> None:
    """Read what is left of a finished stream (its chunked-encoding end) so the connection goes back to
    the pool instead of being closed. Best effort: a stall or error here only costs the connection."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
        async with asyncio.timeout(timeout_s):
            while await response.content.readany():
                pass


class StreamTranslator(Protocol):
    """One call's translator from an upstream's stream chunks to canonical events (OpenAI's, Gemini's)."""

    @property
    def finished(self) -> bool: ...

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...


class SseStream:
    """An open upstream stream that answered 200: its SSE ``messages``, read within the call's timeouts."""

    __slots__ = ("_request_id_header", "_response", "messages")

    def __init__(self, response: aiohttp.ClientResponse, messages: AsyncIterator[SseMessage],
                 request_id_header: str) -> None:
        self._response = response
        self._request_id_header = request_id_header
        self.messages = messages

    def error(self, payload: Mapping[str, Any]) -> UpstreamHttpError:
        """The error for an error frame inside the stream (no status: the stream had answered 200)."""
        return UpstreamHttpError.from_body(None, payload, self._response.headers.get(self._request_id_header))

    async def drain(self) -> None:
        """Read the rest after the stream's last event, so the connection returns to the pool."""
        await drain(self._response)


class DirectHttp:
    """How one direct provider is fetched: the shared pool, and the header its request ids come in."""

    def __init__(self, pool: HttpPool, *, request_id_header: str) -> None:
        self._pool = pool
        self._request_id_header = request_id_header

    async def post(self, call: UpstreamCall, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """POST ``body`` and read the whole answer, both within ``call.timeout_s``; a non-200 status raises."""
        began = time.perf_counter()
        try:
            async with self._pool.session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
        finally:
            call.wire.seconds += time.perf_counter() - began
        if response.status != 200:
            raise UpstreamHttpError.from_body(response.status, raw, response.headers.get(self._request_id_header))
        return raw

    @asynccontextmanager
    async def open_stream(self, call: UpstreamCall, url: str, body: bytes, headers: Mapping[str, str]
                          ) -> AsyncGenerator[SseStream, None]:
        """POST ``body`` for a stream; inside the block, its SSE messages. The answer's start (an error body
        included) must come within ``call.timeout_s``, then each chunk within ``call.read_timeout_s``.
        The response is released when the block ends, however it ends."""
        deadline = asyncio.get_running_loop().time() + call.timeout_s
        began = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._pool.session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=None),
                )
        finally:
            call.wire.seconds += time.perf_counter() - began
        try:
            if response.status != 200:
                began = time.perf_counter()
                async with asyncio.timeout_at(deadline):
                    raw = await response.read()
                call.wire.seconds += time.perf_counter() - began
                raise UpstreamHttpError.from_body(response.status, raw, response.headers.get(self._request_id_header))
            chunks = timed_chunks(response, first_deadline=deadline, read_timeout_s=call.read_timeout_s,
                                  wire=call.wire)
            async with aclosing(iter_sse(chunks)) as messages:
                yield SseStream(response, messages, self._request_id_header)
        finally:
            response.release()

    async def translated_stream(
        self,
        call: UpstreamCall,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        translator: StreamTranslator,
        *,
        chunk_name: str,
        finish_name: str,
        done_marker: bytes | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Canonical events from a stream of JSON chunks (``chunk_name`` says what one is, for errors).

        An ``{"error": …}`` chunk raises. The stream must end with its ``done_marker`` data line (OpenAI's
        ``[DONE]``) or at least after the translator saw a finish (``finish_name``, for errors); otherwise
        it was cut short and ``aiohttp.ClientPayloadError`` is raised.
        """
        async with self.open_stream(call, url, body, headers) as upstream:
            done = False
            async for message in upstream.messages:
                if done_marker is not None and message.data == done_marker:
                    done = True
                    break
                chunk = json_object(message.data, chunk_name)
                if "error" in chunk:
                    raise upstream.error(chunk)
                for event in translator.feed(chunk):
                    yield StreamEvent(event["type"], event)
            if not (done or translator.finished):
                raise aiohttp.ClientPayloadError(f"the stream ended before {finish_name}")
            if done:
                await upstream.drain()
            for event in translator.finish():
                yield StreamEvent(event["type"], event)
