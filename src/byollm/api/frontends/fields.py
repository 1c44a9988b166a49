"""Type checks for request bodies: every field a client API defines, checked before anything is sent.

Why byollm checks types the upstream would check anyway: a wrong-typed field must be the caller's 400
naming the field, not a translator's crash (a 500) or an upstream call that was paid for; and the front
ends forward bodies, so what they forward must be what the API defines. Unknown fields are left alone
(the upstream decides about them); only known fields are checked, and only their JSON types and the few
ranges the APIs document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = [
    "Check",
    "array_of",
    "boolean",
    "check_fields",
    "integer",
    "invalid",
    "number",
    "obj",
    "one_of",
    "string",
]

Check = Callable[[Any, str], None]


def invalid(field: str, why: str) -> ByollmError:
    return ByollmError(ErrorClass.INVALID_REQUEST, f"{field}: {why}", field=field)


def string(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise invalid(field, "expected a string")


def boolean(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise invalid(field, "expected true or false")


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(field, "expected an integer")
        if minimum is not None and value < minimum:
            raise invalid(field, f"expected an integer of at least {minimum}")
        if maximum is not None and value > maximum:
            raise invalid(field, f"expected an integer of at most {maximum}")
    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Check:
    def check(value: Any, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(field, "expected a number")
        if minimum is not None and value < minimum:
            raise invalid(field, f"expected a number of at least {minimum}")
        if maximum is not None and value > maximum:
            raise invalid(field, f"expected a number of at most {maximum}")
    return check


def obj(fields: Mapping[str, Check] | None = None, *, required: Sequence[str] = ()) -> Check:
    """A JSON object; its known ``fields`` checked when present, ``required`` ones present."""
    def check(value: Any, field: str) -> None:
        if not isinstance(value, Mapping):
            raise invalid(field, "expected an object")
        for name in required:
            if value.get(name) is None:
                raise invalid(f"{field}.{name}", "required")
        if fields:
            check_fields(value, fields, prefix=f"{field}.")
    return check


def array_of(item: Check | None = None, *, min_items: int = 0) -> Check:
    def check(value: Any, field: str) -> None:
        if not isinstance(value, list):
            raise invalid(field, "expected an array")
        if len(value) < min_items:
            raise invalid(field, f"expected at least {min_items} item(s)")
        if item is not None:
            for index, element in enumerate(value):
                item(element, f"{field}.{index}")
    return check


def one_of(forms: Mapping[type, Check | None], *, expected: str) -> Check:
    """A value of one of several JSON types (``str``, ``list``, ``Mapping``...), each checked its own way
    (None: the type is enough); ``expected`` names the accepted forms."""
    def check(value: Any, field: str) -> None:
        if isinstance(value, bool) and bool not in forms:
            raise invalid(field, f"expected {expected}")
        for kind, inner in forms.items():
            if isinstance(value, kind):
                if inner is not None:
                    inner(value, field)
                return
        raise invalid(field, f"expected {expected}")
    return check


def check_fields(body: Mapping[str, Any], fields: Mapping[str, Check], *, prefix: str = "") -> None:
    """Check each known field present and not null (null means absent in both APIs)."""
    for name, check in fields.items():
        value = body.get(name)
        if value is not None:
            check(value, prefix + name)
