"""Credit balances from the ledger, and the hot path's cached view of AI credits (``CreditTracker``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text

from byollm.store import Store
from byollm.store.ledger import (
    CreditTracker,
    ai_credits_used,
    credits_remaining,
    credits_used,
    month_bounds,
    period_of,
)
from byollm.store.request_log import LedgerCharge, RequestLogWriter, RequestRecord

MakeRequest = Callable[..., RequestRecord]
MakeCharge = Callable[..., LedgerCharge]
TEAM = "T" * 22
OTHER_TEAM = "O" * 22
NOV = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def charge(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge, credits: str, at: datetime, **kw: str
) -> None:
    writer = RequestLogWriter(store)
    record = make_request(credits=Decimal(credits), started_at=at, team_uid=kw.pop("team_uid", TEAM))
    writer.submit(record, [make_charge(record, **kw)])
    assert await writer.flush() == 1


def test_periods_are_utc_calendar_months() -> None:
    assert period_of(datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-11"
    assert month_bounds("2026-12") == (DEC_1, datetime(2027, 1, 1, tzinfo=UTC))
    assert month_bounds("2026-02") == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    for bad in ("2026-13", "2026-1", "26-11", "2026/11", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(bad)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_of(datetime(2026, 11, 1))


async def test_balances_sum_charges_by_team_bucket_and_period(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    await charge(store, make_request, make_charge, "1.5", NOV)
    await charge(store, make_request, make_charge, "0.000001", DEC_1 - timedelta(microseconds=1))
    await charge(store, make_request, make_charge, "7", DEC_1)  # the first instant of December
    await charge(store, make_request, make_charge, "4", NOV, bucket="compute")
    await charge(store, make_request, make_charge, "100", NOV, team_uid=OTHER_TEAM)

    async with store.session(readonly=True) as session:
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-11") == Decimal("1.500001")
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-12") == Decimal(7)
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-10") == Decimal(0)
        assert await ai_credits_used(session, team_uid=OTHER_TEAM, period="2026-11") == Decimal(100)
        assert await credits_used(
            session, team_uid=TEAM, bucket="compute", since=NOV - timedelta(days=1), until=NOV + timedelta(days=1)
        ) == Decimal(4)
        assert await credits_used(session, team_uid=TEAM, bucket="ai_credits", since=NOV, until=NOV) == Decimal(0)
        assert await credits_remaining(
            session, team_uid=TEAM, bucket="compute", allowance=10, period="2026-11"
        ) == Decimal(6)
        assert await credits_remaining(
            session, team_uid=TEAM, bucket="ai_credits", allowance=5, period=None
        ) == Decimal("-3.500001")
        with pytest.raises(ValueError, match="is not a valid CreditBucket"):
            await credits_used(session, team_uid=TEAM, bucket="gold", since=NOV, until=DEC_1)


async def test_credits_are_stored_rounded_to_six_places_on_both_databases(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    await charge(store, make_request, make_charge, "0.0000005", NOV)  # rounds half up, as PostgreSQL does
    await charge(store, make_request, make_charge, "0.1000004", NOV)
    await charge(store, make_request, make_charge, "0.2", NOV)
    async with store.session(readonly=True) as session:
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-11") == Decimal("0.300001")


async def test_tracker_answers_from_the_allowance_and_local_charges(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    await charge(store, make_request, make_charge, "90", NOV)
    clock = FakeClock()
    tracker = CreditTracker(store, refresh_s=5.0, clock=clock)

    assert not await tracker.ai_credits_available(TEAM, 0, NOV)  # no allowance: no database read at all
    assert tracker.reloads == 0
    assert await tracker.ai_credits_available(TEAM, 100, NOV)
    assert not await tracker.ai_credits_available(TEAM, 90, NOV)
    assert tracker.reloads == 1

    # A burst between reloads: charges noted locally count at once, without another round trip.
    for _ in range(4):
        tracker.note_charge(TEAM, Decimal("2.5"), NOV)
    assert tracker.used(TEAM, "2026-11") == Decimal(100)
    assert not await tracker.ai_credits_available(TEAM, 100, NOV)
    assert await tracker.ai_credits_available(TEAM, 101, NOV)
    assert await tracker.ai_credits_available(OTHER_TEAM, 1, NOV)  # teams are tracked separately
    assert tracker.reloads == 2


async def test_concurrent_checks_share_one_reload(store: Store) -> None:
    tracker = CreditTracker(store)
    results = await asyncio.gather(*(tracker.ai_credits_available(TEAM, 10, NOV) for _ in range(50)))
    assert all(results)
    assert tracker.reloads == 1


async def test_tracker_reloads_after_refresh_and_forgets_notes_once_written(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    clock = FakeClock()
    tracker = CreditTracker(store, refresh_s=5.0, visibility_s=2.0, clock=clock)
    assert await tracker.ai_credits_available(TEAM, 10, NOV)

    # Another replica charges 6: invisible until the cached total is refreshed.
    await charge(store, make_request, make_charge, "6", NOV)
    clock.now += 4.9
    assert await tracker.ai_credits_available(TEAM, 6, NOV)
    clock.now += 0.1
    assert not await tracker.ai_credits_available(TEAM, 6, NOV)
    assert tracker.used(TEAM, "2026-11") == Decimal(6)

    # This replica charges 3: noted at once, and written by its writer.
    clock.now += 4.0
    tracker.note_charge(TEAM, Decimal(3), NOV)
    assert tracker.used(TEAM, "2026-11") == Decimal(9)
    await charge(store, make_request, make_charge, "3", NOV)
    clock.now += 1.0  # a reload within visibility_s of the note may count it twice (never too little)
    await tracker.ai_credits_available(TEAM, 100, NOV)
    assert tracker.used(TEAM, "2026-11") == Decimal(12)
    clock.now += 5.0  # a reload after visibility_s counts it once
    await tracker.ai_credits_available(TEAM, 100, NOV)
    assert tracker.used(TEAM, "2026-11") == Decimal(9)
    assert tracker.reloads == 4


async def test_a_new_month_starts_fresh(store: Store, make_request: MakeRequest, make_charge: MakeCharge) -> None:
    await charge(store, make_request, make_charge, "10", NOV)
    clock = FakeClock()
    tracker = CreditTracker(store, refresh_s=3600.0, clock=clock)
    assert not await tracker.ai_credits_available(TEAM, 10, NOV)
    tracker.note_charge(TEAM, Decimal(5), DEC_1 - timedelta(seconds=1))  # a late November charge

    assert await tracker.ai_credits_available(TEAM, 10, DEC_1)  # reloaded for December, long before refresh
    assert tracker.used(TEAM, "2026-12") == Decimal(0)
    tracker.note_charge(TEAM, Decimal(10), DEC_1)
    assert not await tracker.ai_credits_available(TEAM, 10, DEC_1 + timedelta(minutes=1))
    assert tracker.reloads == 2


async def test_tracker_uses_the_last_total_or_fails_closed_when_the_database_is_away(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    await charge(store, make_request, make_charge, "4", NOV)
    clock = FakeClock()
    tracker = CreditTracker(store, refresh_s=1.0, clock=clock)
    assert await tracker.ai_credits_available(TEAM, 5, NOV)

    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE credit_ledger RENAME TO credit_ledger_away"))
    try:
        clock.now += 2.0
        assert await tracker.ai_credits_available(TEAM, 5, NOV)  # the last known total still answers
        tracker.note_charge(TEAM, Decimal(1), NOV)
        assert not await tracker.ai_credits_available(TEAM, 5, NOV)
        assert not await tracker.ai_credits_available(OTHER_TEAM, 5, NOV)  # nothing known: fail closed
        assert not await tracker.ai_credits_available(OTHER_TEAM, 5, NOV)  # without retrying every call
        assert tracker.failed_reloads == 2
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE credit_ledger_away RENAME TO credit_ledger"))
    clock.now += 2.0
    assert await tracker.ai_credits_available(OTHER_TEAM, 5, NOV)
