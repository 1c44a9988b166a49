"""The store: SQLAlchemy 2 (async) tables, keyword-only repositories and packaged Alembic migrations.

SQLite file by default (in the data directory), PostgreSQL by URL; the same code and tests run on both.
Use it through a ``Store`` (built from ``Settings``, never at import) and one session scope per unit of
work; repository modules: ``users``, ``teams`` (and memberships), ``policy``, ``agents``, ``tokens``,
``audit``, ``secrets``, ``keys`` (KEK lifecycle), ``migrate`` (schema upgrade and check), ``request_log``
(the batched request-log and ledger writer), ``ledger`` (credit totals, the hot path's credit tracker),
``usage`` (usage reports).
"""

from __future__ import annotations

from byollm.store.engine import Store, create_engine
from byollm.store.errors import ConflictError, NotFoundError, SchemaOutOfDateError, StoreError

__all__ = ["ConflictError", "NotFoundError", "SchemaOutOfDateError", "Store", "StoreError", "create_engine"]
