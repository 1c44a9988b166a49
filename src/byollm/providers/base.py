"""The one protocol every upstream adapter implements, and the values that cross it.

Canonical format: the Anthropic Messages API. A request is an Anthropic Messages body; a complete answer is
an Anthropic message; a stream is a sequence of Anthropic streaming events. Bedrock's Claude models take
that body almost verbatim and the direct Anthropic API exactly, so both paths are near pass-through; the
OpenAI and Gemini adapters translate.

Contract for adapters (see ``bedrock.py``, ``anthropic_direct.py``, ``openai_direct.py``,
``google_direct.py``):

- ``complete`` returns one ``CompletedMessage``; ``stream`` is an async generator of ``StreamEvent``;
  ``count_tokens`` returns the input token count.
- Every upstream failure, including one raised while iterating a stream, is raised as a ``ByollmError``
  of the right taxonomy class, converted at the adapter's boundary in ONE context manager. A raw upstream
  body or exception text never escapes (it may echo request content); details are built from status codes,
  error type names and identifiers.
- Adapters never see byollm's own token, the caller's AWS credentials for another route, or a BYOK key for
  another provider: the executor hands each call only the ``UpstreamAuth`` its route needs.
- No routing decisions here: the executor (``gateway``) owns the plan and the failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import RouteCandidate

__all__ = [
    "ApiKeyAuth",
    "AwsAuth",
    "CanonicalRequest",
    "CompletedMessage",
    "Provider",
    "StreamEvent",
    "UpstreamAuth",
    "UpstreamCall",
    "Usage",
    "WireClock",
]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_creation_input_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
        )

    def plus(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """What the caller asked for, in Anthropic Messages form.

    ``body`` is the Messages body as the client sent it (its ``model`` is the caller's model name and is
    replaced per route; ``stream`` is removed by adapters that must not send it). ``anthropic_beta`` holds
    the ``anthropic-beta`` header values, which Bedrock wants inside the body instead.

    ``origin_api`` names the client API the request arrived in (``anthropic``, ``openai``,
    ``openai_responses``) and ``raw_body`` is that request as parsed, so an adapter whose upstream speaks
    the same API can forward it (see ``Provider.passes_through``) instead of the translation.
    """

    body: Mapping[str, Any]
    stream: bool = False
    anthropic_version: str = "2023-06-01"
    anthropic_beta: tuple[str, ...] = ()
    request_id: str = ""
    team_uid: str = ""
    origin_api: str = "anthropic"
    raw_body: Mapping[str, Any] | None = None
    lost: tuple[tuple[str, str], ...] = ()

    def unsupported_here(self) -> ByollmError | None:
        """The refusal for a route that serves ``body`` (the canonical form) when the canonical form lost
        something the caller asked for: ``lost`` holds (field, why) pairs of the caller's own request that
        Anthropic Messages cannot carry. Such a route is skipped (``unsupported_by_route``, which fails
        over); an adapter that passes the caller's ``raw_body`` through in its own API serves it whole."""
        if not self.lost:
            return None
        field, why = self.lost[0]
        return ByollmError(ErrorClass.UNSUPPORTED_BY_ROUTE, f"{field}: {why}", field=field)


@dataclass(frozen=True, slots=True)
class AwsAuth:
    """Short-lived AWS credentials for exactly one Bedrock call (delegated or web-identity).

    ``__repr__`` is overridden so the values can never reach a log line or a traceback by accident.
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return "AwsAuth(<redacted>)"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """A direct provider's API key (the operator's or the user's BYOK key), for one call."""

    api_key: str

    def __repr__(self) -> str:
        return "ApiKeyAuth(<redacted>)"


UpstreamAuth = AwsAuth | ApiKeyAuth


class WireClock:
    """Time one attempt spent waiting on its upstream: connecting, sending, and reading the answer.

    Adapters add to it around each network await and nothing else, so the gateway's overhead figure (total
    time minus this) counts byollm's own work, serialising and signing included, as byollm's.
    """

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """Everything one attempt needs: the route, where to send it, and the credential for it.

    ``base_url`` is the provider's base URL (Bedrock: the runtime endpoint for the route's region).
    ``timeout_s`` bounds the whole call for non-streaming requests and the wait for the first event when
    streaming; ``read_timeout_s`` bounds the gap between streamed chunks.
    """

    candidate: RouteCandidate
    request: CanonicalRequest
    auth: UpstreamAuth
    base_url: str
    timeout_s: float = 120.0
    read_timeout_s: float = 60.0
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    wire: WireClock = field(default_factory=WireClock)


@dataclass(frozen=True, slots=True)
class CompletedMessage:
    """A complete answer as an Anthropic message; ``raw`` is its JSON exactly as received, when the API the
    caller used can take it unchanged (no re-serialisation on the pass-through path)."""

    message: Mapping[str, Any]
    usage: Usage
    raw: bytes | None = None
    wire: bytes | None = None  # the answer in the caller's own (non-canonical) API, on a pass-through route


@dataclass(slots=True)
class StreamEvent:
    """One Anthropic streaming event (``type`` is its ``type`` field); ``raw`` is its JSON as received when
    it can be passed through unchanged.

    On a pass-through of another client API (an OpenAI Responses stream relayed from OpenAI), ``wire`` is
    the upstream's frame, which the front end writes unchanged, and ``type``/``data`` are only its
    canonical meaning for accounting (usage, text, the commit point); ``type`` may then name no Anthropic
    event at all when the frame means nothing for accounting. One upstream frame can mean several canonical
    events: the frame rides on the last of them and the others carry ``b""`` (nothing more to write)."""

    type: str
    data: Mapping[str, Any]
    raw: bytes | None = None
    wire: bytes | None = None  # the whole SSE frame in the caller's own (non-canonical) API, on a pass-through


class Provider(Protocol):
    """One upstream host. Implementations are stateless per call; they may share a connection pool."""

    async def complete(self, call: UpstreamCall) -> CompletedMessage: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]: ...

    async def count_tokens(self, call: UpstreamCall) -> int: ...

    def passes_through(self, request: CanonicalRequest) -> bool:
        """Whether this adapter serves ``request`` from its ``raw_body`` in the caller's own API (then what
        the canonical form lost does not matter)."""
        ...
