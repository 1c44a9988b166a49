"""Runs and their events: the run queue's SQL, in keyword-only functions over one session.

Why the queue lives here and looks like this: workers on several hosts share one PostgreSQL database, so
the database is the arbiter. ``claim_runs`` takes queued rows with ``SELECT ... FOR UPDATE SKIP LOCKED``
(two workers never take the same row, and neither waits for the other); on SQLite, where write
transactions are serialised by ``BEGIN IMMEDIATE``, the same statement without the locking clause is
equally safe. A claimed run carries a lease; every later write by its worker is fenced by
``lease_owner`` and the attempt number (``_fenced``), so a worker that lost its lease (it stalled, or was
presumed dead and the run was handed to another) changes nothing. ``recover_expired`` turns runs whose
lease ran out back into ``queued`` (another attempt) or ``failed``, per the run's ``max_attempts``.

Events are numbered per run under the run row's lock (``append_event``), so SSE resume by number is exact.

Clocks: lease expiry times are written by the worker that holds the lease and compared by the worker that
recovers, each with its own clock; hosts must keep their clocks in sync (NTP) to well within the lease
(30 s by default), and a worker stops a run itself when it could not renew its lease for 80% of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.errors import NotFoundError
from byollm.store.tables_runs import Run, RunEvent
from byollm.store.uids import issue_uid

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "Allowances",
    "EventRecord",
    "Recovered",
    "RunRecord",
    "append_event",
    "charge",
    "claim_runs",
    "create_run",
    "finish_run",
    "get_run",
    "list_events",
    "list_runs",
    "lock_run",
    "mark_degraded",
    "purge_transcripts",
    "recover_expired",
    "release_run",
    "renew_lease",
    "request_cancel",
    "save_progress",
    "set_compute_seconds",
    "team_allowances",
]

ACTIVE_STATES = frozenset({"queued", "running"})
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    uid: str
    team_uid: str
    started_by_type: str
    started_by_uid: str
    agent_uid: str | None
    actor_kind: str
    model: str
    tools: tuple[str, ...]
    state: str
    error_code: str | None
    error_detail: str | None
    attempts: int
    max_attempts: int
    turns: int
    max_turns: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    compute_seconds: int
    event_seq: int
    steered_seq: int
    transcript: tuple[Mapping[str, Any], ...] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    degraded_code: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class EventRecord:
    run_uid: str
    seq: int
    kind: str
    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Recovered:
    """A run whose worker stopped renewing its lease, and what became of it."""

    uid: str
    team_uid: str
    state: str  # "queued" (another attempt), "failed" or "cancelled"
    attempts: int


def _record(row: Run) -> RunRecord:
    return RunRecord(
        uid=row.uid, team_uid=row.team_uid, started_by_type=row.started_by_type, started_by_uid=row.started_by_uid,
        agent_uid=row.agent_uid, actor_kind=row.actor_kind, model=row.model, tools=tuple(str(x) for x in row.tools),
        state=row.state, error_code=row.error_code, error_detail=row.error_detail, attempts=row.attempts,
        max_attempts=row.max_attempts, turns=row.turns, max_turns=row.max_turns, lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at, cancel_requested=row.cancel_requested,
        compute_seconds=row.compute_seconds, event_seq=row.event_seq, steered_seq=row.steered_seq,
        transcript=tuple(row.transcript) if row.transcript is not None else None, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, updated_at=row.updated_at,
        degraded_code=row.degraded_code,
    )


def _event(row: RunEvent) -> EventRecord:
    return EventRecord(run_uid=row.run_uid, seq=row.seq, kind=row.kind, data=dict(row.data), at=row.at)


async def create_run(
    session: AsyncSession,
    *,
    team_uid: str,
    started_by_type: str,
    started_by_uid: str,
    agent_uid: str | None,
    actor_kind: str,
    model: str,
    tools: Sequence[str],
    transcript: Sequence[Mapping[str, Any]],
    max_attempts: int,
    max_turns: int,
    now: datetime,
) -> RunRecord:
    """Insert a queued run (events are appended by the caller, in the same transaction)."""
    row = Run(
        uid=await issue_uid(session, kind="run"), team_uid=team_uid, started_by_type=started_by_type,
        started_by_uid=started_by_uid, agent_uid=agent_uid, actor_kind=actor_kind, model=model, tools=list(tools),
        state="queued", attempts=0, max_attempts=max_attempts, turns=0, max_turns=max_turns,
        cancel_requested=False, compute_seconds=0, event_seq=0, steered_seq=0,
        transcript=[dict(m) for m in transcript],
        created_at=now, updated_at=now,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def get_run(session: AsyncSession, *, run_uid: str, team_uid: str | None = None) -> RunRecord:
    row = await session.get(Run, run_uid, populate_existing=True)
    if row is None or (team_uid is not None and row.team_uid != team_uid):
        raise NotFoundError("no such run in this team", run_uid=run_uid)
    return _record(row)


async def lock_run(session: AsyncSession, *, run_uid: str, team_uid: str | None = None) -> RunRecord:
    """The run, with its row locked until the transaction ends (PostgreSQL; SQLite's write lock is global)."""
    query = select(Run).where(Run.uid == run_uid).with_for_update().execution_options(populate_existing=True)
    row = await session.scalar(query)
    if row is None or (team_uid is not None and row.team_uid != team_uid):
        raise NotFoundError("no such run in this team", run_uid=run_uid)
    return _record(row)


async def list_runs(
    session: AsyncSession, *, team_uid: str, started_by_uid: str | None = None, state: str | None = None,
    limit: int = 100,
) -> list[RunRecord]:
    """Newest first."""
    query: Select[Run] = select(Run).where(Run.team_uid == team_uid)
    if started_by_uid is not None:
        query = query.where(Run.started_by_uid == started_by_uid)
    if state is not None:
        query = query.where(Run.state == state)
    rows = await session.scalars(query.order_by(Run.created_at.desc(), Run.uid).limit(limit))
    return [_record(r) for r in rows]


async def append_event(
    session: AsyncSession, *, run_uid: str, kind: str, data: Mapping[str, Any], now: datetime
) -> int:
    """Append one event and return its number. Locks the run row until the transaction ends."""
    seq = await session.scalar(
        update(Run).where(Run.uid == run_uid).values(event_seq=Run.event_seq + 1).returning(Run.event_seq)
    )
    if seq is None:
        raise NotFoundError("no such run", run_uid=run_uid)
    session.add(RunEvent(run_uid=run_uid, seq=int(seq), kind=kind, data=dict(data), at=now))
    await session.flush()
    return int(seq)


async def list_events(
    session: AsyncSession, *, run_uid: str, after: int = 0, kinds: Sequence[str] | None = None, limit: int = 1000
) -> list[EventRecord]:
    query = select(RunEvent).where(RunEvent.run_uid == run_uid, RunEvent.seq > after)
    if kinds is not None:
        query = query.where(RunEvent.kind.in_(list(kinds)))
    rows = await session.scalars(query.order_by(RunEvent.seq).limit(limit))
    return [_event(r) for r in rows]


async def claim_runs(
    session: AsyncSession, *, worker_id: str, limit: int, lease_s: float, now: datetime
) -> list[RunRecord]:
    """Claim up to ``limit`` queued runs, oldest first, for ``worker_id``; each gets a lease and an attempt."""
    if limit <= 0:
        return []
    uids = list(await session.scalars(
        select(Run.uid).where(Run.state == "queued").order_by(Run.created_at).limit(limit)
        .with_for_update(skip_locked=True)
    ))
    if not uids:
        return []
    await session.execute(
        update(Run).where(Run.uid.in_(uids), Run.state == "queued").values(
            state="running", lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=Run.attempts + 1, started_at=func.coalesce(Run.started_at, now), updated_at=now,
        )
    )
    rows = await session.scalars(
        select(Run).where(Run.uid.in_(uids), Run.lease_owner == worker_id, Run.state == "running")
        .execution_options(populate_existing=True)
    )
    return [_record(r) for r in rows]


def _fenced(run_uid: str, worker_id: str, attempt: int) -> Any:
    return (Run.uid == run_uid) & (Run.lease_owner == worker_id) & (Run.attempts == attempt) & (
        Run.state == "running")


async def renew_lease(
    session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, lease_s: float, now: datetime,
    compute_seconds: int | None = None,
) -> bool | None:
    """Extend the lease; None when the lease is lost, else whether a cancel was requested."""
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
    if compute_seconds is not None:
        values["compute_seconds"] = compute_seconds
    result = await session.scalar(
        update(Run).where(_fenced(run_uid, worker_id, attempt)).values(**values).returning(Run.cancel_requested)
    )
    return None if result is None else bool(result)


async def set_compute_seconds(
    session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, compute_seconds: int, now: datetime,
) -> bool:
    """Record the compute seconds charged so far; False when the lease is lost. Called in the transaction
    that writes the compute charge, so a crash between the two cannot leave the ledger ahead of the run's
    ``compute_seconds`` (the next attempt continues from that number)."""
    result = await session.execute(update(Run).where(_fenced(run_uid, worker_id, attempt)).values(
        compute_seconds=compute_seconds, updated_at=now))
    return bool(getattr(result, "rowcount", 0))


async def save_progress(
    session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, transcript: Sequence[Mapping[str, Any]],
    turns: int, steered_seq: int, now: datetime,
) -> bool:
    """Store the transcript after a turn; False when the lease is lost."""
    result = await session.execute(
        update(Run).where(_fenced(run_uid, worker_id, attempt)).values(
            transcript=[dict(m) for m in transcript], turns=turns, steered_seq=steered_seq, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def finish_run(
    session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, state: str, now: datetime,
    error_code: str | None = None, error_detail: str | None = None, compute_seconds: int | None = None,
) -> bool:
    """Move a running run to a terminal state; False when the lease is lost (someone else owns it now)."""
    values: dict[str, Any] = {
        "state": state, "error_code": error_code, "error_detail": error_detail, "finished_at": now,
        "updated_at": now, "lease_owner": None, "lease_expires_at": None,
    }
    if compute_seconds is not None:
        values["compute_seconds"] = compute_seconds
    result = await session.execute(update(Run).where(_fenced(run_uid, worker_id, attempt)).values(**values))
    return bool(getattr(result, "rowcount", 0))


async def mark_degraded(session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, code: str) -> bool:
    """Record that a paid fallback served the run after a Bedrock failure of class ``code`` (the first such
    failure is kept); False when the lease is lost."""
    result = await session.execute(update(Run).where(_fenced(run_uid, worker_id, attempt)).values(
        degraded_code=func.coalesce(Run.degraded_code, code)))
    return bool(getattr(result, "rowcount", 0))


async def release_run(session: AsyncSession, *, run_uid: str, worker_id: str, attempt: int, now: datetime,
                      compute_seconds: int | None = None) -> bool:
    """Give a run back to the queue (a worker shutting down cleanly); the attempt does not count."""
    values: dict[str, Any] = {"state": "queued", "lease_owner": None, "lease_expires_at": None,
                              "attempts": Run.attempts - 1, "updated_at": now}
    if compute_seconds is not None:
        values["compute_seconds"] = compute_seconds
    result = await session.execute(update(Run).where(_fenced(run_uid, worker_id, attempt)).values(**values))
    return bool(getattr(result, "rowcount", 0))


async def request_cancel(session: AsyncSession, *, run_uid: str, now: datetime) -> str:
    """Cancel a queued run at once, or flag a running one; returns the state after the call."""
    run = await lock_run(session, run_uid=run_uid)
    if run.state == "queued":
        await session.execute(update(Run).where(Run.uid == run_uid).values(
            state="cancelled", cancel_requested=True, finished_at=now, updated_at=now,
            error_code=None, error_detail="cancelled before it started"))
        return "cancelled"
    if run.state == "running":
        await session.execute(update(Run).where(Run.uid == run_uid).values(cancel_requested=True, updated_at=now))
    return run.state


async def recover_expired(
    session: AsyncSession, *, now: datetime, limit: int = 100, detail: str = "",
) -> list[Recovered]:
    """Runs whose lease expired: back to ``queued`` while attempts remain, else ``failed`` (or ``cancelled``
    when a cancel was pending). Each is locked with SKIP LOCKED, so two workers never recover the same run."""
    rows = list(await session.scalars(
        select(Run).where(Run.state == "running", Run.lease_expires_at < now).order_by(Run.lease_expires_at)
        .limit(limit).with_for_update(skip_locked=True).execution_options(populate_existing=True)
    ))
    recovered: list[Recovered] = []
    for row in rows:
        if row.cancel_requested:
            row.state, row.finished_at, row.error_detail = "cancelled", now, "cancelled; its worker had stopped"
        elif row.attempts < row.max_attempts:
            row.state = "queued"
        else:
            row.state, row.finished_at = "failed", now
            row.error_code, row.error_detail = "internal_error", detail
        row.lease_owner, row.lease_expires_at, row.updated_at = None, None, now
        recovered.append(Recovered(uid=row.uid, team_uid=row.team_uid, state=row.state, attempts=row.attempts))
    await session.flush()
    return recovered


async def charge(
    session: AsyncSession, *, key: str, team_uid: str, run_uid: str, principal_uid: str, bucket: str, model: str,
    credits: Decimal, at: datetime,
) -> None:
    """Write one ledger charge keyed by ``key``; a second write with the same key is ignored."""
    values = {
        "attempt_id": key, "team_uid": team_uid, "request_id": f"run:{run_uid}", "principal_uid": principal_uid,
        "run_uid": run_uid, "bucket": bucket, "model": model[:200] or "-", "host": "byollm-runs",
        "input_tokens": 0, "output_tokens": 0, "credits": credits, "at": at,
    }
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        await session.execute(pg_insert(t.LedgerEntry).values(**values).on_conflict_do_nothing(
            index_elements=["attempt_id"]))
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    await session.execute(sqlite_insert(t.LedgerEntry).values(**values).on_conflict_do_nothing(
        index_elements=["attempt_id"]))


async def purge_transcripts(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Drop the transcripts and events of finished runs older than their team's retention; the run row
    (who, when, state, credits) stays. At most ``limit`` runs per call; returns how many were purged."""
    purged: list[str] = []
    teams = (await session.execute(select(t.Team.uid, t.Team.transcript_retention_days))).all()
    for team_uid, days in teams:
        if len(purged) >= limit:
            break
        cutoff = now - timedelta(days=max(int(days), 0))
        purged.extend(await session.scalars(
            select(Run.uid).where(Run.team_uid == team_uid, Run.finished_at.is_not(None), Run.finished_at <= cutoff,
                                  Run.transcript_purged_at.is_(None)).limit(limit - len(purged))))
    if not purged:
        return 0
    await session.execute(delete(RunEvent).where(RunEvent.run_uid.in_(purged)))
    await session.execute(update(Run).where(Run.uid.in_(purged)).values(transcript=None, transcript_purged_at=now))
    return len(purged)


@dataclass(frozen=True, slots=True)
class Allowances:
    platform_credits: int
    compute_credits: int


async def team_allowances(session: AsyncSession, *, team_uid: str) -> Allowances:
    """The team's platform and compute allowances (one small read, for a worker's every heartbeat)."""
    row = (await session.execute(select(t.Team.platform_credits, t.Team.compute_credits)
                                 .where(t.Team.uid == team_uid))).first()
    if row is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    return Allowances(platform_credits=int(row[0]), compute_credits=int(row[1]))
