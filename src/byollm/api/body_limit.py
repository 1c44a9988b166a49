"""Refuse request bodies larger than byollm accepts, before reading them into memory.

A declared ``Content-Length`` over the limit is refused at once (the server enforces declared framing); a
body without one (chunked) is read here, bounded by the limit, and replayed to the app, so it is refused as
soon as it crosses the limit and never held beyond it. The answer is the ``payload_too_large`` class in the shape of
the API the caller used.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byollm.api.errors import error_body, shape_for_path
from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["BodyLimitMiddleware"]


def _replay(chunks: list[bytes], then: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once; then ``then`` (a disconnect seen while reading), or
    else the real ``receive``, so a streaming response still learns of a genuine disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if then is not None and not chunks:
                return then
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if then is not None:
            return then
        return await receive()

    return replay


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

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
        # no declared length (chunked): read it here, bounded, and hand the app a replay
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = ByollmError(ErrorClass.PAYLOAD_TOO_LARGE, f"the request body exceeds {self.max_bytes} bytes")
        body = orjson.dumps(error_body(error, shape_for_path(scope.get("path", "")), request_id_of(scope)))
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-byollm-error-code", error.error_class.code.encode()), (b"x-should-retry", b"false"),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
