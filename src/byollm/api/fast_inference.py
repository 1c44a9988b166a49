"""A short way in for the inference POSTs (``/v1/messages``, ``/v1/chat/completions``, ``/v1/responses``).

Why: these requests are the hot path, and FastAPI's way to a handler (the router's route scan, the
endpoint wrapper, dependency solving, the exception middleware's wrapping of ``send``) cost about a tenth of
the gateway's CPU per request in py-spy profiles, and FastAPI's own outer layers (its telemetry hooks, the
server-error and exception middleware, its body-size layer) about as much again. ``ByollmApp`` (``api/app.py``)
hands exactly those method+path pairs to ``FastInferencePath`` before any of FastAPI's layers, wrapped in
the same ``RequestIdMiddleware`` and ``BodyLimitMiddleware`` every other request passes, so the request id,
the arrival time and the body limit apply here too. It calls the same handler functions in
``inference_routes`` and renders their errors with the same renderer (``api.errors.render``), so the answers
are byte-for-byte the ones the routed path gives; an unexpected exception becomes ``internal_error`` here, as
the routed path's catch-all would make it. Everything else, including other methods on these paths and the
OpenAPI document (still generated from the FastAPI route declarations), goes through FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from byollm.api import inference_routes
from byollm.api.errors import render
from byollm.api.request_id import request_id_of
from byollm.errors import ByollmError, ErrorClass

__all__ = ["FastInferencePath", "fast_handler"]

log = logging.getLogger("byollm.api")

Handler = Callable[[Request], Awaitable[Response]]


_HANDLERS: dict[str, Handler] = {
    "/v1/messages": inference_routes.messages,
    "/v1/chat/completions": inference_routes.chat_completions,
    "/v1/responses": inference_routes.responses,
}


def fast_handler(scope: Scope) -> Handler | None:
    """The handler when ``scope`` is one of the inference POSTs, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return _HANDLERS.get(path)


class FastInferencePath:
    """The ASGI app of the inference POSTs; ``ByollmApp`` sends it nothing else (``fast_handler`` decides)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = fast_handler(scope)
        assert handler is not None, "only the inference POSTs are dispatched here"
        await self._serve(handler, scope, receive, send)

    @staticmethod
    async def _serve(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ByollmError as error:
            response = render(request, error)
        except Exception as exc:  # the routed path's catch-all answer: internal_error, the request id only
            rid = request_id_of(scope)
            log.error("unhandled error in POST %s (request %s): %s", scope["path"], rid, type(exc).__name__)
            response = render(request, ByollmError(ErrorClass.INTERNAL_ERROR, f"internal error; request id {rid}"))
        await response(scope, receive, send)
