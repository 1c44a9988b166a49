"""Usage reports and request listings, computed with SQL GROUP BY from the request log and the ledger.

Why two queries merged in Python: request counts, errors and tokens belong to requests (``request_log``),
while credits belong to charges (``credit_ledger``, the source of truth, which also holds run charges that
have no request row). Each side is grouped by the same keys and the results are joined on them:

- ``principal``: the principal's UID (UIDs are unique across users and agents);
- ``model``: the model that served (the requested one when nothing served) / the model charged;
- ``host``: where it ran (None when no route served) / the host charged;
- ``bucket``: who paid: the request's billing bucket (``customer_cloud``, ``ai_credits``, ``user_key``) /
  the charge's bucket (``ai_credits``, ``platform``, ``compute``); ``ai_credits`` is shared by both, so
  requests paid with AI credits and their credits land on one row;
- ``day``: the UTC calendar day of ``started_at`` / of the charge's ``at``.

A group with charges but no requests (a run's compute) has zero requests and tokens; one with requests but
no charges (Bedrock, BYOK) has zero credits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.request_log import AttemptRecord, RequestRecord

__all__ = ["DIRECT", "GROUP_KEYS", "OUTCOMES", "RequestFilter", "UsageRow", "list_requests", "usage_report"]

GROUP_KEYS = ("principal", "model", "host", "bucket", "day")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of a usage report; keys not grouped by are None."""

    principal: str | None = None
    model: str | None = None
    host: str | None = None
    bucket: str | None = None
    day: date | None = None
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    credits: Decimal = Decimal(0)


def _day(column: Any, dialect: str) -> ColumnElement[str]:
    """'YYYY-MM-DD' of a UTC timestamp column. Literal arguments, not bound ones, so the very same SQL
    text appears in SELECT and GROUP BY (PostgreSQL compares the two textually)."""
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), column)
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    return func.date(column)  # SQLite stores naive UTC text: 'YYYY-MM-DD HH:MM:SS.ffffff'


def _check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    if isinstance(group_by, str):
        raise TypeError("group_by is a sequence of keys, not a string")
    unknown = sorted(set(group_by) - set(GROUP_KEYS))
    if unknown:
        raise ValueError(f"cannot group usage by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}")
    return tuple(key for key in GROUP_KEYS if key in group_by)  # canonical order, no duplicates


async def usage_report(
    session: AsyncSession, *, team_uid: str, since: datetime, until: datetime, group_by: Sequence[str]
) -> list[UsageRow]:
    """A team's usage in ``[since, until)``, one row per group (one row in all for ``group_by=()``, none
    without activity), sorted by the keys in the order of ``GROUP_KEYS`` (None first), whatever the order
    of ``group_by``."""
    keys = _check_group_by(group_by)
    dialect = session.get_bind().dialect.name
    rl, lg = t.RequestLog, t.LedgerEntry

    request_keys: dict[str, SQLColumnExpression[Any]] = {
        "principal": rl.principal_uid,
        "model": func.coalesce(rl.served_model, rl.requested_model),
        "host": rl.host,
        "bucket": rl.billing,
        "day": _day(rl.started_at, dialect),
    }
    failed = or_(rl.status >= 400, rl.error_code.is_not(None))
    request_cols = [request_keys[k] for k in keys]
    request_query = (
        select(
            *request_cols,
            func.count(),
            func.sum(case((failed, 1), else_=0)),
            func.sum(rl.input_tokens),
            func.sum(rl.output_tokens),
        )
        .where(rl.team_uid == team_uid, rl.started_at >= since, rl.started_at < until)
        .group_by(*request_cols)
    )
    ledger_keys: dict[str, SQLColumnExpression[Any]] = {
        "principal": lg.principal_uid,
        "model": lg.model,
        "host": lg.host,
        "bucket": lg.bucket,
        "day": _day(lg.at, dialect),
    }
    ledger_cols = [ledger_keys[k] for k in keys]
    ledger_query = (
        select(*ledger_cols, func.sum(lg.credits))
        .where(lg.team_uid == team_uid, lg.at >= since, lg.at < until)
        .group_by(*ledger_cols)
    )

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    n = len(keys)
    for row in await session.execute(request_query):
        if not row[n]:  # an aggregate over no rows (no group keys): nothing to report
            continue
        group = groups.setdefault(tuple(row[:n]), {})
        group.update(
            requests=int(row[n]),
            errors=int(row[n + 1] or 0),
            input_tokens=int(row[n + 2] or 0),
            output_tokens=int(row[n + 3] or 0),
        )
    for row in await session.execute(ledger_query):
        if row[n] is None:
            continue
        credits = row[n] if isinstance(row[n], Decimal) else Decimal(str(row[n]))
        groups.setdefault(tuple(row[:n]), {})["credits"] = credits

    result = []
    for values, totals in groups.items():
        named = dict(zip(keys, values, strict=True))
        if named.get("day") is not None:
            named["day"] = date.fromisoformat(str(named["day"]))
        result.append(UsageRow(**named, **totals))
    result.sort(key=lambda r: tuple((getattr(r, k) is not None, getattr(r, k) or "") for k in keys))
    return result


def _record(row: t.RequestLog) -> RequestRecord:
    attempts = tuple(
        AttemptRecord(
            attempt_id=str(a.get("attempt_id", "")),
            route=str(a.get("route", "")),
            host=str(a.get("host", "")),
            model=str(a.get("model", "")),
            error_code=a.get("error_code"),
            latency_ms=float(a.get("latency_ms", 0.0)),
        )
        for a in row.attempts or ()
    )
    return RequestRecord(
        request_id=row.request_id,
        team_uid=row.team_uid,
        principal_type=row.principal_type,
        principal_uid=row.principal_uid,
        token_uid=row.token_uid,
        api=row.api,
        requested_model=row.requested_model,
        served_model=row.served_model,
        route=row.route,
        host=row.host,
        credential=row.credential,
        billing=row.billing,
        stream=row.stream,
        status=row.status,
        error_code=row.error_code,
        attempts=attempts,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        credits=row.credits,
        duration_ms=row.duration_ms,
        overhead_ms=row.overhead_ms,
        started_at=row.started_at,
        auto_reason=row.auto_reason,
        run_uid=row.run_uid,
        content=row.content,
    )


OUTCOMES = ("ok", "error", "fallback")
"""Request outcomes a listing can filter by: served without a failed attempt, failed, or served after at
least one failed attempt (a fallback)."""

DIRECT = "direct"
"""The ``host`` filter value meaning every direct provider API (anything but Bedrock)."""


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which requests a listing returns; every field None means no filter on it."""

    principal_uid: str | None = None
    since: datetime | None = None
    model: str | None = None  # the served model, or the requested one (a name or alias as sent)
    host: str | None = None  # a host (``bedrock``, ``anthropic``...) or ``direct`` for every non-Bedrock host
    outcome: str | None = None  # one of OUTCOMES
    request_id: str | None = None


def _filtered(query: Any, where: RequestFilter) -> Any:
    rl = t.RequestLog
    if where.principal_uid is not None:
        query = query.where(rl.principal_uid == where.principal_uid)
    if where.since is not None:
        query = query.where(rl.started_at >= where.since)
    if where.request_id is not None:
        query = query.where(rl.request_id == where.request_id)
    if where.model is not None:
        query = query.where(or_(rl.served_model == where.model, rl.requested_model == where.model))
    if where.host == DIRECT:
        query = query.where(rl.host.is_not(None), rl.host != "bedrock")
    elif where.host is not None:
        query = query.where(rl.host == where.host)
    if where.outcome is not None:
        if where.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {where.outcome!r}; choose from {', '.join(OUTCOMES)}")
        failed = or_(rl.status >= 400, rl.error_code.is_not(None))
        length = func.json_array_length(rl.attempts)  # the same function on PostgreSQL (json) and SQLite
        if where.outcome == "error":
            query = query.where(failed)
        elif where.outcome == "ok":
            query = query.where(~failed, length <= 1)
        else:
            query = query.where(~failed, length > 1)
    return query


async def list_requests(
    session: AsyncSession,
    *,
    team_uid: str,
    principal_uid: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    where: RequestFilter | None = None,
) -> list[RequestRecord]:
    """A team's requests newest first (at most ``limit``, capped at 1000, after skipping ``offset``),
    optionally for one principal, at or after ``since``, and matching ``where``."""
    where = where or RequestFilter()
    if principal_uid is not None or since is not None:
        where = replace(where, principal_uid=principal_uid or where.principal_uid, since=since or where.since)
    query = (
        select(t.RequestLog)
        .where(t.RequestLog.team_uid == team_uid)
        .order_by(t.RequestLog.started_at.desc(), t.RequestLog.request_id.desc())
        .limit(max(1, min(limit, 1000)))
        .offset(max(0, offset))
    )
    query = _filtered(query, where)
    return [_record(row) for row in await session.scalars(query)]
