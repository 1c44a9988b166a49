"""The run queue's SQL on SQLite and PostgreSQL: claims never overlap, leases fence stale workers,
expired leases are retried or failed per ``max_attempts``, and transcripts are purged after retention."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from byollm.settings import Settings, normalize_database_url
from byollm.store import Store
from byollm.store import runs as repo
from byollm.store import teams as teams_repo
from byollm.store.migrate import upgrade
from support.stack import KEK

PG_ENV = "BYOLLM_TEST_DATABASE_URL"


def _plain(url: str) -> str:
    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    settings = Settings.for_data_dir(tmp_path, kek=KEK)
    name = ""
    if request.param == "postgresql":
        base = os.environ.get(PG_ENV)
        if not base:
            pytest.skip(f"{PG_ENV} not set: the PostgreSQL variant of the queue tests needs a server")
        name = f"byollm_runs_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(_plain(base))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = make_url(normalize_database_url(base)).set(database=name).render_as_string(hide_password=False)
        settings = Settings.for_data_dir(tmp_path, kek=KEK, database_url=url)
    await upgrade(settings)
    s = Store.from_settings(settings)
    try:
        yield s
    finally:
        await s.dispose()
        if name:
            conn = await asyncpg.connect(_plain(os.environ[PG_ENV]))
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()


async def _team(store: Store, retention_days: int = 30) -> str:
    async with store.session() as session:
        team = await teams_repo.create_team(session, name=f"t-{secrets.token_hex(4)}")
    from sqlalchemy import update

    from byollm.store.tables import Team

    async with store.session() as session:
        await session.execute(update(Team).where(Team.uid == team.uid).values(transcript_retention_days=retention_days))
    return team.uid


async def _new_run(store: Store, team_uid: str, max_attempts: int = 2) -> str:
    async with store.session() as session:
        run = await repo.create_run(session, team_uid=team_uid, started_by_type="user", started_by_uid="U" * 22,
                                    agent_uid=None, actor_kind="user_run", model="opus", tools=[],
                                    transcript=[{"role": "user", "content": "hi"}], max_attempts=max_attempts,
                                    max_turns=3, now=datetime.now(UTC))
    return run.uid


async def test_concurrent_claims_never_take_the_same_run(store: Store) -> None:
    team = await _team(store)
    uids = {await _new_run(store, team) for _ in range(12)}

    async def claim(worker: str) -> list[str]:
        got: list[str] = []
        for _ in range(12):
            async with store.session() as session:
                claimed = await repo.claim_runs(session, worker_id=worker, limit=2, lease_s=30, now=datetime.now(UTC))
            got.extend(r.uid for r in claimed)
        return got

    results = await asyncio.gather(*(claim(f"w{i}") for i in range(4)))
    taken = [uid for got in results for uid in got]
    assert sorted(taken) == sorted(uids)  # every run claimed exactly once


async def test_expired_leases_are_retried_then_failed_and_stale_workers_are_fenced(store: Store) -> None:
    team = await _team(store)
    uid = await _new_run(store, team, max_attempts=2)
    now = datetime.now(UTC)
    async with store.session() as session:
        (first,) = await repo.claim_runs(session, worker_id="w1", limit=1, lease_s=1, now=now)
    assert first.attempts == 1 and first.state == "running"
    later = now + timedelta(seconds=5)
    async with store.session() as session:
        recovered = await repo.recover_expired(session, now=later, detail="lost")
    assert [(r.uid, r.state) for r in recovered] == [(uid, "queued")]
    async with store.session() as session:
        (second,) = await repo.claim_runs(session, worker_id="w2", limit=1, lease_s=1, now=later)
    assert second.attempts == 2
    async with store.session() as session:  # the first worker wakes up: every write it tries is refused
        assert await repo.renew_lease(session, run_uid=uid, worker_id="w1", attempt=1, lease_s=30, now=later) is None
        assert not await repo.save_progress(session, run_uid=uid, worker_id="w1", attempt=1, transcript=[],
                                            turns=9, steered_seq=0, now=later)
        assert not await repo.finish_run(session, run_uid=uid, worker_id="w1", attempt=1, state="succeeded",
                                         now=later)
    async with store.session() as session:
        recovered = await repo.recover_expired(session, now=later + timedelta(seconds=5), detail="lost twice")
        run = await repo.get_run(session, run_uid=uid)
    assert [r.state for r in recovered] == ["failed"]
    assert run.state == "failed" and run.error_code == "internal_error" and run.error_detail == "lost twice"
    assert run.turns == 0  # the stale worker's progress never landed


async def test_purge_drops_transcripts_and_events_after_retention(store: Store) -> None:
    keep_team, purge_team = await _team(store, retention_days=30), await _team(store, retention_days=1)
    uids = {}
    for team in (keep_team, purge_team):
        uid = await _new_run(store, team)
        now = datetime.now(UTC)
        async with store.session() as session:
            await repo.append_event(session, run_uid=uid, kind="prompt", data={"text": "hi"}, now=now)
            (claimed,) = [r for r in await repo.claim_runs(session, worker_id="w", limit=5, lease_s=30, now=now)
                          if r.uid == uid]
            await repo.finish_run(session, run_uid=uid, worker_id="w", attempt=claimed.attempts, state="succeeded",
                                  now=now - timedelta(days=2))
        uids[team] = uid
    async with store.session() as session:
        assert await repo.purge_transcripts(session, now=datetime.now(UTC)) == 1
    async with store.session(readonly=True) as session:
        kept = await repo.get_run(session, run_uid=uids[keep_team])
        gone = await repo.get_run(session, run_uid=uids[purge_team])
        assert kept.transcript is not None and await repo.list_events(session, run_uid=kept.uid)
        assert gone.transcript is None and gone.state == "succeeded"
        assert await repo.list_events(session, run_uid=gone.uid) == []
