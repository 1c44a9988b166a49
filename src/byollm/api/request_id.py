"""Give every HTTP request an id, expose it as ``x-request-id``, and make it available to handlers.

Why our own id and never the client's: the id is quoted in error messages and stored in logs, so it must be
unguessable and free of anything a client could inject.
"""

from __future__ import annotations

import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware", "request_id_of", "request_started_of"]

_HEADER = b"x-request-id"


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()  # 96 random bits from the OS CSPRNG; cheaper than secrets.token_hex


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
                headers.append((_HEADER, rid))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
