"""Small helpers every translator from the canonical (Anthropic Messages) format shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = ["content_blocks", "invalid", "number_field", "unsupported"]


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


def number_field(req: Mapping[str, Any], field: str, *, integer: bool = False) -> Any:
    """A numeric request field, None when absent; anything else is the caller's error, named."""
    value = req.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise invalid(field, "expected a non-negative number")
    if integer:
        if int(value) != value or value < 1:
            raise invalid(field, "expected a positive integer")
        return int(value)
    return value
