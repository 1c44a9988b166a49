"""Small helpers every translator from the canonical (Anthropic Messages) format shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = ["content_blocks", "invalid", "unsupported"]


def invalid(field: str, why: str) -> ByollmError:
    """A malformed request, invalid for any provider: the caller must fix it (no failover)."""
    return ByollmError(ErrorClass.INVALID_REQUEST, f"{field}: {why}", field=field)


def unsupported(field: str, why: str) -> ByollmError:
    """A canonical request this route's API cannot take: the route is skipped, the next may serve it."""
    return ByollmError(ErrorClass.UNSUPPORTED_BY_ROUTE, f"{field}: {why}", field=field)


def content_blocks(content: Any) -> list[Mapping[str, Any]]:
    """A message's content as a list of blocks (a plain string is one text block; non-objects are dropped)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, Mapping)]
    return []
