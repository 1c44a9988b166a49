"""Store errors: what a repository call can raise, already in the taxonomy of ``byollm.errors``.

Why they subclass ``ByollmError``: the API's one exception handler renders them (409, 404, 500) without
knowing about the store. Their details are built from table, column and constraint names only; driver
messages (which can echo bound values such as a token hash) are never copied in.

Tree::

    ByollmError
     +-- StoreError               any database failure (internal_error, 500)
          +-- ConflictError       a unique key already exists, or a concurrent change won (conflict, 409)
          +-- NotFoundError       the row, or a row it refers to, does not exist (not_found, 404)
          +-- SchemaOutOfDateError the database is not at this byollm's migration head; names the fix
"""

from __future__ import annotations

from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = ["ConflictError", "NotFoundError", "SchemaOutOfDateError", "StoreError"]


class StoreError(ByollmError):
    """A database failure with a safe, identifier-only detail."""

    default_class = ErrorClass.INTERNAL_ERROR

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(self.default_class, detail, **context)


class ConflictError(StoreError):
    default_class = ErrorClass.CONFLICT


class NotFoundError(StoreError):
    default_class = ErrorClass.NOT_FOUND


class SchemaOutOfDateError(StoreError):
    """The schema is behind (or ahead of) the code; the message says which command fixes it."""
