"""What a client API front end is: the one place that knows a client API's wire format.

Why a concept of its own: byollm speaks several client APIs (Anthropic Messages, OpenAI Chat Completions,
OpenAI Responses) over one gateway. Each front end turns its API's request into a ``ParsedRequest`` (the
canonical request, remembering the origin API and the body as sent, and what routing needs) and renders
the gateway's typed results (a ``CompletedMessage``, ``StreamEvent``s, a ``StreamFailure``, a
``ByollmError``) back in its wire format. All of them frame streams with the one SSE codec
(``providers.sse.encode_sse``) and build error bodies with the one error renderer (``api.errors``); the
serving loop around them (``api.inference_routes.serve``) is shared.

``parse`` validates the whole body before anything else happens, so a malformed request never opens an
upstream connection and is refused in the caller's own error shape naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from byollm.errors import ByollmError
from byollm.gateway.executor import Served, ServedStream
from byollm.policy.types import RouteRequest
from byollm.providers.base import CanonicalRequest

__all__ = ["ClientApi", "ParsedRequest", "RequestMeta", "credits_trailer"]


def credits_trailer(opened: ServedStream) -> bytes:
    """An SSE comment with what a streamed answer cost, sent after its last event: the headers left before
    the usage was known, and every SSE reader (the official SDKs included) skips comment lines."""
    return f": x-byollm-credits={opened.credits if opened.credits is not None else 0}\n\n".encode()


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What a front end may read of the HTTP request besides its body (no credential is in here)."""

    request_id: str
    team_uid: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated request: the canonical form the gateway routes and serves, and what rendering needs.

    ``model`` is the model name the caller asked for (answers name it); ``options`` holds what only this
    front end's rendering reads (OpenAI's ``stream_options.include_usage``, for example).
    """

    canonical: CanonicalRequest
    route: RouteRequest
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)


class ClientApi(Protocol):
    """One client API. Implementations are stateless: per-request state lives in ``ParsedRequest`` and in
    the stream they render."""

    @property
    def api(self) -> str:
        """The API's name in the request log and metrics, and ``CanonicalRequest.origin_api``."""
        ...

    @property
    def error_shape(self) -> str:
        """Which ``api.errors.ApiShape`` its errors take."""
        ...

    def parse(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        """Validate ``body`` completely (raise ``ByollmError(INVALID_REQUEST)`` naming the field) and build
        the canonical request. ``size`` is the body's length in bytes (for the routing estimate)."""
        ...

    def render(self, served: Served, parsed: ParsedRequest, request_id: str) -> bytes:
        """The complete answer's JSON body."""
        ...

    def render_stream(self, opened: ServedStream, parsed: ParsedRequest, request_id: str) -> AsyncIterator[bytes]:
        """The stream's bytes, a ``StreamFailure`` rendered as this API's in-stream error."""
        ...

    def render_error(self, error: ByollmError, request_id: str) -> bytes:
        """An error body in this API's shape (non-streaming answers)."""
        ...
