"""Check the caller's token before any of its request body is read (every route but the inference POSTs,
whose handlers authenticate before reading anyway).

Why: FastAPI reads and parses a route's body before it resolves the dependency that authenticates, so an
anonymous caller could make the server read (up to ``BYOLLM_MAX_BODY_BYTES``) and parse a body it will refuse.
Here a request that carries a body is refused before a byte of it is read when it has no credential for its
door: no token on the APIs (``/v1/``, ``/api/``), no cookie on the panel (whose sign-in form has a CSRF cookie,
``panel.sessions``). On the APIs the token itself is checked too, through the same ``authenticate_request``
the handlers use (failed attempts counted per client; the handler's own check then hits the auth cache).
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from byollm.api.auth import authenticate_request, token_from_headers
from byollm.api.errors import error_body, shape_for_path
from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["AuthBeforeBody"]

_API_PREFIXES = ("/v1/", "/api/")
_PANEL_PREFIX = "/admin"


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


class AuthBeforeBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope.get("headers", [])):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        request = Request(scope)
        if path.startswith(_API_PREFIXES):
            token = token_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
            try:
                if token is None:
                    raise ByollmError(ErrorClass.UNAUTHENTICATED, "no byollm token in the request")
                await authenticate_request(request, token)
            except ByollmError as error:
                await self._refuse(scope, send, error)
                return
        elif path.startswith(_PANEL_PREFIX) and not request.headers.get("cookie"):
            await self._refuse(scope, send, ByollmError(
                ErrorClass.FORBIDDEN, "this form needs the panel's cookies; reload the page and submit it again"))
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, error: ByollmError) -> None:
        body = orjson.dumps(error_body(error, shape_for_path(scope.get("path", "")), request_id_of(scope)))
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-byollm-error-code", error.error_class.code.encode()),
            (b"x-should-retry", b"true" if error.retryable else b"false"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
