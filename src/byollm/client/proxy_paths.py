"""Which requests ``byollm proxy`` forwards: the inference endpoints an agent tool needs, nothing else.

Why an allow-list on the raw request target: the proxy attaches the user's byollm token (and AWS session) to
what it forwards, and that token also opens the admin API. A path that only *looks* like ``/v1/...`` once a
client, the server or the forwarding client has normalised it (``/v1/../api/v1/me``, ``/v1/%2e%2e/api``,
``/v1/..%2fapi``, ``%252e``, backslashes, ``//``) must never become a request to anything but an inference
endpoint. So the decision is made on the bytes the tool sent, before any decoding: a target is refused
outright when it contains a dot segment, a backslash, an empty segment, or a percent-escape of a dot, slash,
backslash or percent sign (which covers double encoding), and is otherwise matched exactly against the
list below. What is forwarded is the canonical path rebuilt from the match, never the path as received.

Tools spell the base URL differently (``ANTHROPIC_BASE_URL`` without ``/v1``, ``OPENAI_BASE_URL`` with it, and
some append ``/v1`` to either), so a target may carry no, one or two ``/v1`` prefixes; they all map to the
one canonical ``/v1/...`` path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ALLOWED", "Decision", "decide"]

# (method, path after the /v1 prefix): what an agent tool needs. ``models/*`` is one model's entry.
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("POST", "messages"),
    ("POST", "messages/count_tokens"),
    ("GET", "models"),
    ("GET", "models/*"),
    ("POST", "chat/completions"),
    ("POST", "responses"),
})

_SEGMENT = re.compile(rb"[A-Za-z0-9_\-]+")
_MODEL_ID = re.compile(rb"(?:[A-Za-z0-9_\-:@+~.]|%(?:3[Aa]|40|2[Bb]|7[Ee]))+")  # ``.`` only inside a name
_FORBIDDEN_ESCAPE = re.compile(rb"%(?:2[EeFf]|5[Cc]|25|00)")
_UNRESERVED = {b"%3a": b":", b"%40": b"@", b"%2b": b"+", b"%7e": b"~"}


@dataclass(frozen=True, slots=True)
class Decision:
    """``path`` (canonical, ``/v1/...``) and ``query`` to forward, or ``refusal`` (status, reason) and no path."""

    path: str | None
    query: bytes = b""
    refusal: tuple[int, str] | None = None


def _refuse(status: int, reason: str) -> Decision:
    return Decision(None, refusal=(status, reason))


def decide(method: str, target: bytes) -> Decision:
    """Decide on ``method`` and the raw request target (``/path?query`` exactly as sent)."""
    if not target.startswith(b"/"):
        return _refuse(400, "byollm proxy accepts only origin-form request targets (a path starting with /)")
    raw_path, _, query = target.partition(b"?")
    if b"#" in target or any(b < 0x21 or b > 0x7E for b in target):
        return _refuse(400, "the request target has characters byollm proxy does not accept")
    if b"\\" in raw_path or _FORBIDDEN_ESCAPE.search(raw_path):
        return _refuse(400, "the request path has a backslash or an encoded dot, slash, backslash or percent sign")
    segments = raw_path[1:].split(b"/")
    if any(s in (b"", b".", b"..") for s in segments):
        return _refuse(400, "the request path has an empty, `.` or `..` segment")
    while segments and segments[0] == b"v1" and len(segments) > 1 and segments[1] == b"v1":
        segments = segments[1:]  # a base URL with /v1 appended twice
    if segments and segments[0] == b"v1":
        segments = segments[1:]
    if len(segments) == 2 and segments[0] == b"models":
        model = segments[1]
        if not _MODEL_ID.fullmatch(model) or model.startswith(b"."):
            return _refuse(404, "byollm proxy forwards only the inference endpoints")
        key = "models/*"
    else:
        if not all(_SEGMENT.fullmatch(s) for s in segments):
            return _refuse(404, "byollm proxy forwards only the inference endpoints")
        key = b"/".join(segments).decode("ascii")
    if (method, key) not in ALLOWED:
        return _refuse(404, f"byollm proxy forwards only the inference endpoints, not {method} on this path")
    path = "/v1/" + b"/".join(segments).decode("ascii")
    if key == "models/*":
        for escape, char in _UNRESERVED.items():  # canonical: the id's characters unescaped where harmless
            path = path.replace(escape.decode(), char.decode()).replace(escape.upper().decode(), char.decode())
    return Decision(path, query)
