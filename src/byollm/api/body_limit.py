"""Refuse request bodies larger than byollm accepts, without ever holding more than the limit.

A declared ``Content-Length`` over the limit is refused at once (the server enforces declared framing). A body
without one (chunked) streams through to the app, counted as the app reads it, and the read that crosses the
limit answers 413 ``payload_too_large`` in the shape of the API the caller used (and raises it into the app,
whose own answer to the interrupted read is dropped). Nothing is
read ahead of the app, so a handler that authenticates first (every inference handler, and ``AuthBeforeBody``
for the rest) refuses an unauthenticated caller before a byte of its body is read.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byollm.api.errors import error_body, shape_for_path
from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ByollmError:
        return ByollmError(ErrorClass.PAYLOAD_TOO_LARGE, f"the request body exceeds {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)  # the server enforces the declared framing
            return
        size = 0
        refused = False

        async def counted() -> Message:  # no declared length (chunked): counted as the app reads it
            nonlocal size, refused
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    if not refused and not started:
                        refused = True
                        await self._refuse(scope, send)
                    raise self._too_large()
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was answered; whatever the app makes of the interrupted read is dropped
            started = True
            await send(message)

        await self.app(scope, counted, guarded_send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = self._too_large()
        body = orjson.dumps(error_body(error, shape_for_path(scope.get("path", "")), request_id_of(scope)))
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-byollm-error-code", error.error_class.code.encode()), (b"x-should-retry", b"false"),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
