"""Usage reports (every grouping, UTC day buckets) and request listings, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from byollm.store import Store
from byollm.store.request_log import AttemptRecord, LedgerCharge, RequestLogWriter, RequestRecord
from byollm.store.usage import DIRECT, RequestFilter, UsageRow, list_requests, usage_report

MakeRequest = Callable[..., RequestRecord]
MakeCharge = Callable[..., LedgerCharge]
TEAM = "T" * 22
ALICE = "A" * 22
BOT = "B" * 22
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def seeded(store: Store, make_request: MakeRequest, make_charge: MakeCharge) -> Store:
    """Five requests and one run charge:

    - alice, bedrock (customer cloud), sonnet, Nov 1 10:00 UTC, 100/10 tokens
    - alice, anthropic (AI credits 0.5), sonnet, Nov 1 23:30 UTC given as Nov 2 01:30 +02:00, 200/20 tokens
    - bot (agent), anthropic (AI credits 1.25), haiku, Nov 2 00:30 UTC given as Nov 1 20:30 -04:00, 300/30
    - bot, bedrock, failed (no route served; requested opus), Nov 2 08:00, 0 tokens
    - alice, outside the period (Oct 31 23:59:59.999999 UTC), AI credits 9
    - bot, a compute charge of 2 for a run on Nov 2 (no request row)
    """
    bedrock = {
        "host": "bedrock",
        "route": "bedrock:us.anthropic.claude-sonnet-4-5",
        "credential": "delegated_session",
        "billing": "customer_cloud",
        "credits": Decimal(0),
    }
    plus2, minus4 = timezone(timedelta(hours=2)), timezone(timedelta(hours=-4))
    requests = [
        (
            make_request(
                principal_uid=ALICE,
                started_at=DAY1 + timedelta(hours=10),
                input_tokens=100,
                output_tokens=10,
                **bedrock,
            ),
            False,
        ),
        (
            make_request(
                principal_uid=ALICE,
                started_at=datetime(2026, 11, 2, 1, 30, tzinfo=plus2),
                input_tokens=200,
                output_tokens=20,
                credits=Decimal("0.5"),
            ),
            True,
        ),
        (
            make_request(
                principal_uid=BOT,
                principal_type="agent",
                requested_model="claude-haiku-4-5",
                served_model="claude-haiku-4-5",
                started_at=datetime(2026, 11, 1, 20, 30, tzinfo=minus4),
                input_tokens=300,
                output_tokens=30,
                credits=Decimal("1.25"),
            ),
            True,
        ),
        (
            make_request(
                principal_uid=BOT,
                principal_type="agent",
                requested_model="claude-opus-4-1",
                served_model=None,
                route=None,
                host=None,
                credential=None,
                billing=None,
                status=503,
                error_code="no_fallback_available",
                input_tokens=0,
                output_tokens=0,
                credits=Decimal(0),
                started_at=DAY1 + timedelta(days=1, hours=8),
            ),
            False,
        ),
        (make_request(principal_uid=ALICE, started_at=SINCE - timedelta(microseconds=1), credits=Decimal(9)), True),
    ]
    writer = RequestLogWriter(store)
    for record, charged in requests:
        writer.submit(record, [make_charge(record)] if charged else [])
    run_charge = LedgerCharge(
        attempt_id="run_1.compute",
        team_uid=TEAM,
        request_id="run_1",
        principal_uid=BOT,
        bucket="compute",
        model="sandbox",
        host="byollm",
        input_tokens=0,
        output_tokens=0,
        credits=Decimal(2),
        at=DAY1 + timedelta(days=1, hours=9),
        run_uid="R" * 22,
    )
    other_team = make_request(team_uid="O" * 22, started_at=DAY1 + timedelta(hours=1))
    writer.submit(other_team, [make_charge(other_team)])
    writer.submit(
        make_request(
            request_id="req_run_1",
            principal_uid=BOT,
            principal_type="agent",
            run_uid="R" * 22,
            started_at=SINCE - timedelta(days=3),
            **bedrock,
        ),
        [run_charge],
    )
    assert await writer.flush() == 7
    return store


async def report(store: Store, *group_by: str) -> list[UsageRow]:
    async with store.session(readonly=True) as session:
        return await usage_report(session, team_uid=TEAM, since=SINCE, until=UNTIL, group_by=group_by)


async def test_totals_without_grouping(seeded: Store) -> None:
    assert await report(seeded) == [
        UsageRow(requests=4, errors=1, input_tokens=600, output_tokens=60, credits=Decimal("3.75"))
    ]


async def test_usage_by_principal(seeded: Store) -> None:
    assert await report(seeded, "principal") == [
        UsageRow(principal=ALICE, requests=2, input_tokens=300, output_tokens=30, credits=Decimal("0.5")),
        UsageRow(principal=BOT, requests=2, errors=1, input_tokens=300, output_tokens=30, credits=Decimal("3.25")),
    ]


async def test_usage_by_model_and_host(seeded: Store) -> None:
    # rows are sorted by the keys in their canonical order (principal, model, host, bucket, day), None first
    assert await report(seeded, "host", "model") == [
        UsageRow(
            model="claude-haiku-4-5",
            host="anthropic",
            requests=1,
            input_tokens=300,
            output_tokens=30,
            credits=Decimal("1.25"),
        ),
        UsageRow(model="claude-opus-4-1", host=None, requests=1, errors=1),
        UsageRow(
            model="claude-sonnet-4-5",
            host="anthropic",
            requests=1,
            input_tokens=200,
            output_tokens=20,
            credits=Decimal("0.5"),
        ),
        UsageRow(model="claude-sonnet-4-5", host="bedrock", requests=1, input_tokens=100, output_tokens=10),
        UsageRow(model="sandbox", host="byollm", credits=Decimal(2)),
    ]


async def test_usage_by_bucket(seeded: Store) -> None:
    assert await report(seeded, "bucket") == [
        UsageRow(bucket=None, requests=1, errors=1),
        UsageRow(bucket="ai_credits", requests=2, input_tokens=500, output_tokens=50, credits=Decimal("1.75")),
        UsageRow(bucket="compute", credits=Decimal(2)),
        UsageRow(bucket="customer_cloud", requests=1, input_tokens=100, output_tokens=10),
    ]


async def test_usage_by_utc_day(seeded: Store) -> None:
    assert await report(seeded, "day") == [
        UsageRow(day=date(2026, 11, 1), requests=2, input_tokens=300, output_tokens=30, credits=Decimal("0.5")),
        UsageRow(
            day=date(2026, 11, 2), requests=2, errors=1, input_tokens=300, output_tokens=30, credits=Decimal("3.25")
        ),
    ]


async def test_usage_by_every_key(seeded: Store) -> None:
    nov1, nov2 = date(2026, 11, 1), date(2026, 11, 2)
    assert await report(seeded, "day", "bucket", "host", "model", "principal") == [
        UsageRow(
            principal=ALICE,
            model="claude-sonnet-4-5",
            host="anthropic",
            bucket="ai_credits",
            day=nov1,
            requests=1,
            input_tokens=200,
            output_tokens=20,
            credits=Decimal("0.5"),
        ),
        UsageRow(
            principal=ALICE,
            model="claude-sonnet-4-5",
            host="bedrock",
            bucket="customer_cloud",
            day=nov1,
            requests=1,
            input_tokens=100,
            output_tokens=10,
        ),
        UsageRow(
            principal=BOT,
            model="claude-haiku-4-5",
            host="anthropic",
            bucket="ai_credits",
            day=nov2,
            requests=1,
            input_tokens=300,
            output_tokens=30,
            credits=Decimal("1.25"),
        ),
        UsageRow(principal=BOT, model="claude-opus-4-1", host=None, bucket=None, day=nov2, requests=1, errors=1),
        UsageRow(principal=BOT, model="sandbox", host="byollm", bucket="compute", day=nov2, credits=Decimal(2)),
    ]


async def test_the_period_bounds_are_half_open(seeded: Store) -> None:
    async with seeded.session(readonly=True) as session:
        october = await usage_report(
            session, team_uid=TEAM, since=SINCE - timedelta(days=30), until=SINCE, group_by=["principal"]
        )
        nothing = await usage_report(session, team_uid="N" * 22, since=SINCE, until=UNTIL, group_by=["day"])
    assert october == [
        UsageRow(principal=ALICE, requests=1, input_tokens=100, output_tokens=20, credits=Decimal(9)),
        UsageRow(principal=BOT, requests=1, input_tokens=100, output_tokens=20),
    ]
    assert nothing == []


async def test_unknown_group_keys_are_refused(store: Store) -> None:
    async with store.session(readonly=True) as session:
        with pytest.raises(ValueError, match="cannot group usage by team"):
            await usage_report(session, team_uid=TEAM, since=SINCE, until=UNTIL, group_by=["team", "day"])
        with pytest.raises(TypeError):
            await usage_report(session, team_uid=TEAM, since=SINCE, until=UNTIL, group_by="day")


async def test_list_requests_newest_first_with_filters(seeded: Store) -> None:
    async with seeded.session(readonly=True) as session:
        everything = await list_requests(session, team_uid=TEAM)
        bots = await list_requests(session, team_uid=TEAM, principal_uid=BOT)
        recent = await list_requests(session, team_uid=TEAM, since=DAY1 + timedelta(hours=12))
        latest = await list_requests(session, team_uid=TEAM, limit=1)
    times = [r.started_at for r in everything]
    assert len(everything) == 6
    assert times == sorted(times, reverse=True)
    assert [r.principal_uid for r in bots] == [BOT] * 3
    assert [r.started_at for r in recent] == times[:3]
    assert latest == everything[:1]
    assert everything[0].error_code == "no_fallback_available"
    assert everything[0].served_model is None
    assert all(r.started_at.tzinfo is not None for r in everything)


async def test_list_requests_filters_by_model_host_outcome_and_id_and_pages(
        store: Store, make_request: MakeRequest) -> None:
    """Each filter of the Requests page and ``byollm admin requests``, on both databases (the fallback
    outcome counts the attempts in the JSON column, which the two dialects must agree on)."""
    failed_try = AttemptRecord(attempt_id="x.1", route="bedrock:m", host="bedrock", model="claude-sonnet-4-5",
                               error_code="role_assumption_failed", latency_ms=3.0)
    served_try = AttemptRecord(attempt_id="x.2", route="anthropic:m", host="anthropic", model="claude-sonnet-4-5",
                               error_code=None, latency_ms=9.0)
    plain = make_request(started_at=DAY1)
    fallback = make_request(started_at=DAY1 + timedelta(minutes=1), attempts=(failed_try, served_try))
    bedrock = make_request(started_at=DAY1 + timedelta(minutes=2), host="bedrock", route="bedrock:m",
                           billing="customer_cloud", credential="delegated_session", requested_model="haiku",
                           served_model="claude-haiku-4-5")
    error = make_request(started_at=DAY1 + timedelta(minutes=3), status=503, error_code="no_fallback_available",
                         served_model=None, host=None, route=None, billing=None, credential=None,
                         attempts=(failed_try,))
    writer = RequestLogWriter(store)
    for record in (plain, fallback, bedrock, error):
        writer.submit(record, [])
    assert await writer.flush() == 4

    async def ids(**where: Any) -> list[str]:
        offset, limit = where.pop("offset", 0), where.pop("limit", 100)
        async with store.session(readonly=True) as session:
            rows = await list_requests(session, team_uid=TEAM, limit=limit, offset=offset,
                                       where=RequestFilter(**where))
        return [r.request_id for r in rows]

    assert await ids(outcome="ok") == [bedrock.request_id, plain.request_id]
    assert await ids(outcome="fallback") == [fallback.request_id]
    assert await ids(outcome="error") == [error.request_id]
    assert await ids(host="bedrock") == [bedrock.request_id]
    assert await ids(host=DIRECT) == [fallback.request_id, plain.request_id]
    assert await ids(model="claude-haiku-4-5") == await ids(model="haiku") == [bedrock.request_id]
    assert await ids(request_id=fallback.request_id) == [fallback.request_id]
    assert await ids(limit=2, offset=1) == [bedrock.request_id, fallback.request_id]
    with pytest.raises(ValueError, match="unknown outcome"):
        await ids(outcome="sideways")
