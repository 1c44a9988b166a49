"""Type checks for request bodies: every field a client API defines, checked before anything is sent.

Why byollm checks types the upstream would check anyway: a wrong-typed field must be the caller's 400
naming the field, not a translator's crash (a 500) or an upstream call that was paid for; and the front
ends forward bodies, so what they forward must be what the API defines. Unknown fields are left alone
(the upstream decides about them); only known fields are checked, and only their JSON types and the few
ranges the APIs document.

Speed: this runs on every inference request over the whole conversation, so the success path does only
``isinstance`` tests and loops. A failure raises ``FieldError`` with the reason, and each enclosing array
or object adds its index or name as the error passes through it; the dotted field name
(``messages.3.content.0.text``) is built once, for the one error, by ``check_fields``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = [
    "Check",
    "FieldError",
    "array_of",
    "boolean",
    "check_fields",
    "fields_of",
    "integer",
    "invalid",
    "number",
    "obj",
    "one_of",
    "string",
]

Check = Callable[[Any], None]


class FieldError(Exception):
    """A value of the wrong type or range; ``path`` collects the enclosing names, innermost first."""

    def __init__(self, why: str, *path: str | int) -> None:
        super().__init__(why)
        self.why = why
        self.path: list[str | int] = list(path)


def invalid(field: str, why: str) -> ByollmError:
    return ByollmError(ErrorClass.INVALID_REQUEST, f"{field}: {why}", field=field)


def string(value: Any) -> None:
    if not isinstance(value, str):
        raise FieldError("expected a string")


def boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise FieldError("expected true or false")


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError("expected an integer")
        if minimum is not None and value < minimum:
            raise FieldError(f"expected an integer of at least {minimum}")
        if maximum is not None and value > maximum:
            raise FieldError(f"expected an integer of at most {maximum}")
    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError("expected a number")
        if minimum is not None and value < minimum:
            raise FieldError(f"expected a number of at least {minimum}")
        if maximum is not None and value > maximum:
            raise FieldError(f"expected a number of at most {maximum}")
    return check


def fields_of(value: Mapping[str, Any], fields: Mapping[str, Check]) -> None:
    """Check the known ``fields`` present in ``value`` and not null (null means absent in both APIs)."""
    for name, inner in value.items():
        check = fields.get(name)
        if check is not None and inner is not None:
            try:
                check(inner)
            except FieldError as error:
                error.path.append(name)
                raise


def obj(fields: Mapping[str, Check] | None = None, *, required: Sequence[str] = ()) -> Check:
    """A JSON object; its known ``fields`` checked when present, ``required`` ones present."""
    def check(value: Any) -> None:
        if not isinstance(value, dict):  # a parsed JSON object (cheaper than the Mapping ABC)
            raise FieldError("expected an object")
        for name in required:
            if value.get(name) is None:
                raise FieldError("required", name)
        if fields:
            fields_of(value, fields)
    return check


def array_of(item: Check | None = None) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, list):
            raise FieldError("expected an array")
        if item is not None:
            index = 0
            try:
                for index, element in enumerate(value):  # noqa: B007 (the index names the failing element)
                    item(element)
            except FieldError as error:
                error.path.append(index)
                raise
    return check


def one_of(forms: Mapping[type, Check | None], *, expected: str) -> Check:
    """A value of one of several JSON types (``str``, ``list``, ``dict``...), each checked its own way
    (None: the type is enough); ``expected`` names the accepted forms."""
    def check(value: Any) -> None:
        if not isinstance(value, bool):
            for kind, inner in forms.items():
                if isinstance(value, kind):
                    if inner is not None:
                        inner(value)
                    return
        raise FieldError(f"expected {expected}")
    return check


def check_fields(body: Mapping[str, Any], fields: Mapping[str, Check]) -> None:
    """Check a request body; a wrong field is ``invalid_request`` naming it (``messages.0.content``)."""
    try:
        fields_of(body, fields)
    except FieldError as error:
        raise invalid(".".join(str(part) for part in reversed(error.path)), error.why) from None
