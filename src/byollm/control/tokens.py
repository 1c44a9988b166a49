"""byollm API tokens: generated once, shown once, stored only as a SHA-256 hash.

Why SHA-256 and not a slow password hash: the token is 256 bits of randomness, so a fast hash is already
infeasible to invert, and the gateway must look tokens up on every request (one indexed equality query, or
a cache hit). The non-secret ``display_prefix`` lets people tell their tokens apart in listings.

Format: ``byo_<43 urlsafe characters>``; the ``byo_`` prefix makes leaked tokens easy to find with secret
scanners.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

__all__ = ["TOKEN_PREFIX", "NewToken", "hash_token", "looks_like_token", "new_token"]

TOKEN_PREFIX = "byo_"
_BODY_LEN = 43  # token_urlsafe(32) yields 43 characters


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly generated token. ``value`` must be shown to its owner once and then forgotten."""

    value: str
    sha256: str
    display_prefix: str

    def __repr__(self) -> str:  # keep the value out of tracebacks and logs
        return f"NewToken(display_prefix={self.display_prefix!r})"


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_token() -> NewToken:
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(value=value, sha256=hash_token(value), display_prefix=value[: len(TOKEN_PREFIX) + 6])


def looks_like_token(value: str) -> bool:
    """Cheap shape check before any lookup, so junk never reaches the database."""
    return (
        value.startswith(TOKEN_PREFIX)
        and len(value) == len(TOKEN_PREFIX) + _BODY_LEN
        and all(c.isalnum() or c in "-_" for c in value[len(TOKEN_PREFIX):])
    )
