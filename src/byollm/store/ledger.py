"""The credit ledger: balances as sums over charges, and the hot path's cached view of AI credits.

Why sums and not a balance column: every charge is an immutable row keyed by the attempt that incurred it
(written by ``RequestLogWriter`` with INSERT ... ON CONFLICT DO NOTHING), so a replayed batch can never
charge twice, and a balance is just ``allowance - sum(charges in the period)``. Periods are calendar months
in UTC ("YYYY-MM"); a charge belongs to the month of its ``at``.

Why ``CreditTracker``: the route planner needs "does this team still have AI credits?" on every request,
and the hot path must not pay a database round trip for it. The tracker answers from memory, reloading a
team's month total at most every ``refresh_s`` seconds, and adds the charges this process noted since, so a
burst between reloads cannot overspend by more than the requests already in flight. Across replicas the
overspend is bounded by what the other replicas charge within one ``refresh_s``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.engine import Store
from byollm.store.errors import StoreError

__all__ = [
    "CreditBucket",
    "CreditTracker",
    "ai_credits_used",
    "credits_remaining",
    "credits_used",
    "month_bounds",
    "period_of",
]

log = logging.getLogger(__name__)

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_ZERO = Decimal(0)
_RETRY_AFTER_FAILURE_S = 1.0


class CreditBucket(StrEnum):
    """Which allowance a charge draws on (the ``credit_ledger.bucket`` CHECK constraint lists the same)."""

    AI_CREDITS = "ai_credits"  # inference paid by the operator's direct-API key
    PLATFORM = "platform"  # cloud agent runs: orchestration
    COMPUTE = "compute"  # cloud agent runs: sandbox compute


def period_of(at: datetime) -> str:
    """The "YYYY-MM" month (UTC) an aware datetime falls in."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("periods are computed from timezone-aware datetimes only")
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a "YYYY-MM" month in UTC."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError("period must look like YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return start, end


async def credits_used(
    session: AsyncSession, *, team_uid: str, bucket: CreditBucket | str, since: datetime, until: datetime
) -> Decimal:
    """Credits a team was charged in ``bucket`` for charges dated in ``[since, until)``."""
    bucket = CreditBucket(bucket)
    total = await session.scalar(
        select(func.sum(t.LedgerEntry.credits)).where(
            t.LedgerEntry.team_uid == team_uid,
            t.LedgerEntry.bucket == bucket.value,
            t.LedgerEntry.at >= since,
            t.LedgerEntry.at < until,
        )
    )
    return _decimal(total)


async def ai_credits_used(session: AsyncSession, *, team_uid: str, period: str) -> Decimal:
    """AI credits a team was charged in the "YYYY-MM" month (UTC)."""
    since, until = month_bounds(period)
    return await credits_used(session, team_uid=team_uid, bucket=CreditBucket.AI_CREDITS, since=since, until=until)


async def credits_remaining(
    session: AsyncSession, *, team_uid: str, bucket: CreditBucket | str, allowance: int | Decimal, period: str | None
) -> Decimal:
    """``allowance`` minus the charges in ``bucket``: in the "YYYY-MM" month, or ever when ``period`` is
    None (for balances that do not reset monthly). Negative when the team overspent (a burst across
    replicas can, slightly); callers that gate on it should test ``> 0``."""
    if period is None:
        since, until = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    else:
        since, until = month_bounds(period)
    used = await credits_used(session, team_uid=team_uid, bucket=bucket, since=since, until=until)
    return Decimal(allowance) - used


def _decimal(value: object) -> Decimal:
    if value is None:
        return _ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(slots=True)
class _TeamCredits:
    period: str = ""
    loaded: Decimal = _ZERO  # the month's total as the database had it at the last reload
    loaded_at: float = float("-inf")  # clock() when that reload started
    retry_at: float = float("-inf")  # after a failed reload, do not try again before this clock()
    # charges this process noted and may not be in ``loaded`` yet: (clock() when noted, period, credits)
    notes: deque[tuple[float, str, Decimal]] = field(default_factory=deque)
    local: dict[str, Decimal] = field(default_factory=dict)  # running sums of ``notes`` per period
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CreditTracker:
    """The hot path's view of "does this team still have AI credits this month?", from memory.

    ``ai_credits_available`` reloads a team's month total when it is older than ``refresh_s`` or the month
    changed (a new month starts from what the database holds for it, normally nothing), and adds the
    charges ``note_charge`` recorded since. A noted charge is only forgotten at a reload that starts at
    least ``visibility_s`` after it was noted, by which time the request-log writer (flushing every 100 ms)
    has written it; until then it may be counted twice, which errs towards refusing, never overspending.

    If a reload fails the last known total is used; with nothing known the answer is "no" (fail closed:
    the planner drops the operator-paid routes and Bedrock still serves). One event loop; not thread-safe.
    """

    def __init__(
        self,
        store: Store,
        *,
        refresh_s: float = 5.0,
        visibility_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_s < 0 or visibility_s < 0:
            raise ValueError("refresh_s and visibility_s must not be negative")
        self._store = store
        self._refresh_s = refresh_s
        self._visibility_s = visibility_s
        self._clock = clock
        self._teams: dict[str, _TeamCredits] = {}
        self.reloads = 0
        self.failed_reloads = 0

    def _team(self, team_uid: str) -> _TeamCredits:
        state = self._teams.get(team_uid)
        if state is None:
            state = self._teams[team_uid] = _TeamCredits()
        return state

    def note_charge(self, team_uid: str, credits: Decimal, at: datetime) -> None:
        """Count an AI-credit charge this process just made (submitted to the writer) right away."""
        if credits <= 0:
            return
        period = period_of(at)
        state = self._team(team_uid)
        state.notes.append((self._clock(), period, credits))
        state.local[period] = state.local.get(period, _ZERO) + credits

    def used(self, team_uid: str, period: str) -> Decimal | None:
        """What the tracker currently believes the team used in ``period`` (None if never loaded)."""
        state = self._teams.get(team_uid)
        if state is None or state.period != period:
            return None
        return state.loaded + state.local.get(period, _ZERO)

    async def ai_credits_available(self, team_uid: str, monthly_allowance: int, now: datetime) -> bool:
        """True while the team's AI credits used in ``now``'s month are below ``monthly_allowance``."""
        if monthly_allowance <= 0:
            return False
        period = period_of(now)
        state = self._team(team_uid)
        if self._stale(state, period):
            async with state.lock:  # one reload per team at a time; the others wait and reuse it
                if self._stale(state, period):
                    await self._reload(team_uid, state, period)
        if state.period != period:  # never loaded for this month (the database could not be read)
            return False
        return state.loaded + state.local.get(period, _ZERO) < monthly_allowance

    def _stale(self, state: _TeamCredits, period: str) -> bool:
        now = self._clock()
        if now < state.retry_at:
            return False
        return state.period != period or now - state.loaded_at >= self._refresh_s

    async def _reload(self, team_uid: str, state: _TeamCredits, period: str) -> None:
        started = self._clock()
        try:
            async with self._store.session(readonly=True) as session:
                total = await ai_credits_used(session, team_uid=team_uid, period=period)
        except StoreError as exc:
            self.failed_reloads += 1
            log.warning("could not load AI credits used by team %s (%s); using what is known", team_uid, exc)
            state.retry_at = started + min(self._refresh_s, _RETRY_AFTER_FAILURE_S)  # not on every request
            return
        self.reloads += 1
        state.period, state.loaded, state.loaded_at = period, total, started
        horizon = started - self._visibility_s
        while state.notes and state.notes[0][0] < horizon:
            _, noted_period, credits = state.notes.popleft()
            remaining = state.local[noted_period] - credits
            if remaining > 0:
                state.local[noted_period] = remaining
            else:
                del state.local[noted_period]
