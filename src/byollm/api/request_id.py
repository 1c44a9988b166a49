"""Give every HTTP request an id, expose it as ``request-id`` and ``x-request-id``, and make it available to
handlers.

Why two headers: the official Anthropic and OpenAI SDKs read ``request-id`` (``message._request_id``), while
proxies and log tooling conventionally read ``x-request-id``; both carry the same value.

Why our own id and never the client's: the id is quoted in error messages and stored in logs, so it must be
unguessable and free of anything a client could inject.
"""

from __future__ import annotations

import os
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware", "request_id_of", "request_started_of"]

_HEADERS = (b"request-id", b"x-request-id")
_ID_BYTES = 12  # 96 random bits
_BATCH = 256  # ids drawn from the OS per refill


class _RandomIds:
    """Request ids: ``req_``, the time in milliseconds (12 hex digits), then 96 random bits cut from a buffer
    of OS CSPRNG bytes, refilled every ``_BATCH`` ids.

    Why the time first: the request id is the request log's primary key (and, with the attempt number, the
    ledger's), so ids that grow with time are appended at the right edge of those indexes, where random ids
    land on a random page each and make every batch dirty a page per row. With 200,000 rows already stored,
    random ids cost the writer 71 us of CPU and 103 us of wall time per request, ordered ones 42 and 44
    (``bench/request_log_writer.py``, SQLite), and the gap grows with the table. The time says nothing the
    client did not know; the random part keeps the id unguessable.

    Why a buffer for the random part: ``os.urandom`` is a system call that releases the GIL, and on a busy
    gateway (the request-log writer's thread runnable) getting the GIL back can cost far more than the call
    itself; one call per 256 requests keeps that off nearly every request. The bytes are as unguessable as
    before. A forked child starts with an empty buffer, so two processes never hand out the same ids; a lock
    keeps two threads (two servers in one process) from cutting the same slice.
    """

    __slots__ = ("_buffer", "_lock", "_offset")

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        self._buffer, self._offset, self._lock = b"", 0, threading.Lock()

    def next(self) -> str:
        with self._lock:
            offset = self._offset
            if offset + _ID_BYTES > len(self._buffer):
                self._buffer, offset = os.urandom(_ID_BYTES * _BATCH), 0
            self._offset = offset + _ID_BYTES
            chunk = self._buffer[offset:offset + _ID_BYTES]
        return f"req_{time.time_ns() // 1_000_000:012x}{chunk.hex()}"


_IDS = _RandomIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_IDS.reset)


def new_request_id() -> str:
    return _IDS.next()


def request_id_of(scope: Scope) -> str:
    """The id the middleware assigned; a fresh one if the middleware did not run (direct app tests)."""
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        rid = state["request_id"] = new_request_id()
    return str(rid)


def request_started_of(scope: Scope) -> float:
    """``time.perf_counter()`` when the request reached byollm (for the gateway's overhead figure)."""
    state = scope.setdefault("state", {})
    started = state.get("started")
    if started is None:
        started = state["started"] = time.perf_counter()
    return float(started)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_started_of(scope)
        rid = request_id_of(scope).encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend((name, rid) for name in _HEADERS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
