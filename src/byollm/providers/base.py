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
    """

    body: Mapping[str, Any]
    stream: bool = False
    anthropic_version: str = "2023-06-01"
    anthropic_beta: tuple[str, ...] = ()
    request_id: str = ""
    team_uid: str = ""
    # the client API the request came in (``anthropic``, ``openai``) and its body as the client sent it: an
    # adapter whose upstream speaks that same API forwards ``origin_body`` (with the route's model id)
    # instead of translating ``body``, so every feature of that API works
    origin_api: str = "anthropic"
    origin_body: Mapping[str, Any] | None = None
    # fields of ``origin_body`` with no equivalent in the canonical form: only a same-API route can serve
    # them, every other route is skipped as ``unsupported_by_route`` naming them
    native_only: tuple[str, ...] = ()


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
    caller used can take it unchanged (no re-serialisation on the pass-through path). ``native`` is the
    upstream's answer in the caller's own, non-canonical API (an OpenAI caller on an OpenAI route), relayed
    as it came; ``message`` is then its canonical reading, for usage and the request log."""

    message: Mapping[str, Any]
    usage: Usage
    raw: bytes | None = None
    native: bytes | None = None


@dataclass(slots=True)
class StreamEvent:
    """One Anthropic streaming event (``type`` is its ``type`` field); ``raw`` is its JSON as received when
    it can be passed through unchanged. ``native`` is set on every event of a pass-through stream in the
    caller's own, non-canonical API: the upstream chunk's JSON on the last event read from that chunk, and
    ``b""`` on the others (nothing more to send for them)."""

    type: str
    data: Mapping[str, Any]
    raw: bytes | None = None
    native: bytes | None = None


class Provider(Protocol):
    """One upstream host. Implementations are stateless per call; they may share a connection pool."""

    async def complete(self, call: UpstreamCall) -> CompletedMessage: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]: ...

    async def count_tokens(self, call: UpstreamCall) -> int: ...
