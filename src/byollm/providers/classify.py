"""The direct providers' boundary: upstream failures become taxonomy errors here, and only here.

Why one module for three providers: Anthropic, OpenAI and Gemini fail in the same few ways (a rejected
key, an unknown model, throttling, an outage, a dropped connection, a stall) and the gateway's failover
decision depends only on the taxonomy class. Each adapter wraps its whole exchange, stream iteration
included, in :func:`upstream_errors`; inside it the adapter (or :mod:`byollm.providers.direct_http`, which
fetches for all three) raises :class:`UpstreamHttpError` (an error status or an in-stream error frame, with
the provider's error identifiers) or lets aiohttp/asyncio raise; the context manager turns all of it into a
``ByollmError`` with ``raise ... from exc``.

What reaches the caller: the provider, the HTTP status, the provider's error *identifiers* (Anthropic's
``error.type``, OpenAI's ``error.code``/``error.type``, Google's ``error.status`` and ``details[].reason``),
the upstream request id and, when the upstream refused the request as invalid, its own explanation
(:func:`upstream_explanation`: credential-scrubbed by ``byollm.redact``, whitespace folded, capped at
``EXPLANATION_CHARS``), first in the detail so that clients acting on the upstream's words ("prompt is too
long" starts Claude Code's compaction) still find them. Other classes keep only identifiers: their text
helps nobody fix the request. The text is also read to recognise "model not found/not available" in a 400.

Decisions (see :func:`classify`):

=================================================  ========================  =========
upstream signal                                     class                     fails over
=================================================  ========================  =========
401, ``authentication_error``, ``invalid_api_key``,  provider_key_rejected     yes
Google ``API_KEY_INVALID`` (a 400)
403, ``permission_error``, ``PERMISSION_DENIED``     insufficient_permissions  yes
404, ``not_found_error``, ``model_not_found``,       region_model_mismatch     yes
a 400 saying the model is unknown/unavailable,
OpenAI ``unsupported_country_region_territory``,
Gemini ``FAILED_PRECONDITION`` (location/tier)
429, ``rate_limit_error``, ``RESOURCE_EXHAUSTED``    quota_exceeded            yes
402, ``billing_error``, ``insufficient_quota``       quota_exceeded            yes
408, 5xx, 529 ``overloaded_error``, ``api_error``,   upstream_unavailable      yes
``UNAVAILABLE`` (even inside a 400), timeouts,
connection errors and resets, a malformed or
truncated answer
400/422 otherwise, 413 ``request_too_large``        invalid_request           no
=================================================  ========================  =========

Billing (402, ``billing_error``, OpenAI's ``insufficient_quota``) is ``quota_exceeded``: the key is valid
but its account cannot pay right now, which is a provider-account limit like a quota; it fails over so
another route (Bedrock, another provider) serves the request, and the error code in the details
(``billing_error``) tells the operator it is money, not rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson

from byollm.errors import ByollmError, ErrorClass
from byollm.redact import redact

__all__ = [
    "EXPLANATION_CHARS",
    "UpstreamHttpError",
    "classify",
    "error_identifiers",
    "upstream_errors",
    "upstream_explanation",
]

EXPLANATION_CHARS = 500
_SPACES = re.compile(r"\s+")


def upstream_explanation(message: str) -> str:
    """An upstream's error message as the caller may see it: credentials removed, on one line, capped."""
    text = _SPACES.sub(" ", redact(message)).strip()
    return text if len(text) <= EXPLANATION_CHARS else text[:EXPLANATION_CHARS - 1] + "…"


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,80}$")
_MODEL_UNAVAILABLE = re.compile(
    r"\bmodel\b[^.]{0,120}?\b(not found|does not exist|not supported for|is not available|not available"
    r"|unknown|deprecated|retired)\b",
    re.IGNORECASE,
)

_KEY_REJECTED = frozenset({"authentication_error", "invalid_api_key", "api_key_invalid", "unauthenticated",
                           "invalid_authentication", "api_key_expired"})
_UNAVAILABLE = frozenset({"overloaded_error", "api_error", "server_error", "service_unavailable", "unavailable",
                          "internal", "deadline_exceeded", "engine_overloaded", "timeout"})
_QUOTA = frozenset({"rate_limit_error", "rate_limit_exceeded", "resource_exhausted", "insufficient_quota",
                    "billing_error", "billing_not_active", "requests", "tokens"})
_MODEL_MISMATCH = frozenset({"not_found_error", "model_not_found", "not_found", "failed_precondition",
                             "unsupported_country_region_territory", "model_not_available"})
_PERMISSION = frozenset({"permission_error", "permission_denied"})
_TOO_LARGE = frozenset({"request_too_large"})


class UpstreamHttpError(Exception):
    """An upstream refusal, raised inside :func:`upstream_errors` and converted there.

    ``status`` is the HTTP status (None for an error frame inside a stream that had answered 200);
    ``identifiers`` are the provider's error type/code/status names, most specific first;
    ``model_unavailable`` records that the (unkept) message said the model is unknown or unavailable.
    """

    def __init__(
        self,
        status: int | None,
        identifiers: tuple[str, ...] = (),
        *,
        model_unavailable: bool = False,
        request_id: str | None = None,
        message: str = "",
    ) -> None:
        super().__init__(f"upstream error {status} {identifiers}")
        self.status = status
        self.identifiers = identifiers
        self.model_unavailable = model_unavailable
        self.request_id = request_id
        self.message = message  # the upstream's explanation, already scrubbed and capped

    @classmethod
    def from_body(cls, status: int | None, body: bytes | Mapping[str, Any], request_id: str | None = None
                  ) -> UpstreamHttpError:
        """Read an Anthropic, OpenAI or Google error body (JSON bytes or parsed) into identifiers."""
        payload: Any = body
        if isinstance(body, bytes | bytearray):
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
        identifiers, message = error_identifiers(payload)
        unavailable = bool(message) and _MODEL_UNAVAILABLE.search(message) is not None
        return cls(status, identifiers, model_unavailable=unavailable, request_id=request_id,
                   message=upstream_explanation(message) if message else "")


def error_identifiers(payload: Any) -> tuple[tuple[str, ...], str]:
    """The error identifiers (safe to show) and the raw message (shown only through
    :func:`upstream_explanation`) of any of the three shapes.

    Anthropic ``{"type": "error", "error": {"type", "message"}}``; OpenAI ``{"error": {"code", "type",
    "message"}}``; Google ``{"error": {"code": 400, "status", "message", "details": [{"reason"}]}}``.
    """
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        return (), ""
    found: list[str] = []
    for detail in error.get("details") or ():
        if isinstance(detail, Mapping) and isinstance(detail.get("reason"), str):
            found.append(detail["reason"])
    for key in ("code", "type", "status"):
        value = error.get(key)
        if isinstance(value, str):
            found.append(value)
    safe = tuple(dict.fromkeys(v for v in found if _SAFE_ID.match(v)))
    message = error.get("message")
    return safe, message if isinstance(message, str) else ""


def classify(status: int | None, identifiers: tuple[str, ...] = (), *, model_unavailable: bool = False
             ) -> ErrorClass:
    """The taxonomy class of an upstream refusal; see the module docstring's table.

    Identifiers win over the status (an ``overloaded_error`` or ``UNAVAILABLE`` inside a 400 is an outage,
    ``API_KEY_INVALID`` inside a 400 is a rejected key); the status decides when nothing is recognised.
    """
    names = {i.lower() for i in identifiers}
    if names & _KEY_REJECTED:
        return ErrorClass.PROVIDER_KEY_REJECTED
    if names & _UNAVAILABLE:
        return ErrorClass.UPSTREAM_UNAVAILABLE
    if names & _QUOTA:
        return ErrorClass.QUOTA_EXCEEDED
    if names & _MODEL_MISMATCH:
        return ErrorClass.REGION_MODEL_MISMATCH
    if names & _PERMISSION:
        return ErrorClass.INSUFFICIENT_PERMISSIONS
    if names & _TOO_LARGE:
        return ErrorClass.INVALID_REQUEST
    if status is None:  # an in-stream error we do not recognise: the upstream broke off
        return ErrorClass.INVALID_REQUEST if "invalid_request_error" in names else ErrorClass.UPSTREAM_UNAVAILABLE
    if status in (400, 422):
        return ErrorClass.REGION_MODEL_MISMATCH if model_unavailable else ErrorClass.INVALID_REQUEST
    if status == 401:
        return ErrorClass.PROVIDER_KEY_REJECTED
    if status == 402:
        return ErrorClass.QUOTA_EXCEEDED
    if status == 403:
        return ErrorClass.INSUFFICIENT_PERMISSIONS
    if status == 404:
        return ErrorClass.REGION_MODEL_MISMATCH
    if status == 408:
        return ErrorClass.UPSTREAM_UNAVAILABLE
    if status == 429:
        return ErrorClass.QUOTA_EXCEEDED
    if 400 <= status < 500:
        return ErrorClass.INVALID_REQUEST
    return ErrorClass.UPSTREAM_UNAVAILABLE  # 5xx, Anthropic's 529, and anything unexpected


def _from_http(provider: str, model: str, exc: UpstreamHttpError) -> ByollmError:
    error_class = classify(exc.status, exc.identifiers, model_unavailable=exc.model_unavailable)
    kind = exc.identifiers[0] if exc.identifiers else None
    where = f"HTTP {exc.status}" if exc.status is not None else "an error event mid-stream"
    detail = f"{provider} answered {where}" + (f" ({kind})" if kind else "")
    context: dict[str, Any] = {"provider": provider, "upstream_model": model}
    if error_class is ErrorClass.INVALID_REQUEST and exc.message:
        detail = f"{exc.message} ({detail})"  # the upstream's own words first, as it said them
        context["upstream_message"] = exc.message
    if exc.status is not None:
        context["upstream_status"] = exc.status
    if kind:
        context["upstream_error"] = kind
    if exc.request_id and _SAFE_ID.match(exc.request_id):
        context["upstream_request_id"] = exc.request_id
    return ByollmError(error_class, detail, **context)


def _transport(provider: str, model: str, reason: str, exc: BaseException) -> ByollmError:
    details = {
        "timeout": f"{provider} did not answer in time",
        "connection": f"could not reach {provider} or the connection was lost",
        "malformed": f"{provider} sent an answer byollm could not read",
    }
    return ByollmError(
        ErrorClass.UPSTREAM_UNAVAILABLE, details[reason],
        provider=provider, upstream_model=model, reason=reason, exception=type(exc).__name__,
    )


@contextmanager
def upstream_errors(provider: str, *, model: str) -> Iterator[None]:
    """Convert every upstream failure raised inside the block into a ``ByollmError``.

    Wrap the request, the body read and the stream iteration (``yield`` may sit inside: exceptions that
    close a generator, ``GeneratorExit`` and ``CancelledError``, are not touched). A ``ByollmError`` raised
    inside (a translator refusing a request) passes through unchanged.
    """
    try:
        yield
    except ByollmError:
        raise  # already classified (a refused redirect is also an aiohttp.ClientError)
    except UpstreamHttpError as exc:
        raise _from_http(provider, model, exc) from exc
    except TimeoutError as exc:  # asyncio.timeout and aiohttp's ServerTimeoutError
        raise _transport(provider, model, "timeout", exc) from exc
    except (aiohttp.ClientError, OSError) as exc:  # connect, DNS, reset, payload cut short
        raise _transport(provider, model, "connection", exc) from exc
    except ValueError as exc:  # undecodable JSON or UTF-8 in an answer; shapes the translators reject
        raise _transport(provider, model, "malformed", exc) from exc

