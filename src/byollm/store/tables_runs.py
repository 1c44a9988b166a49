"""Tables of cloud agent runs (runs, their events). Registered on ``tables.Base``'s metadata.

Why these shapes:

- ``runs`` is also the run queue: workers claim ``queued`` rows with ``SELECT ... FOR UPDATE SKIP LOCKED``
  (``ix_runs_state_created_at`` serves that query) and hold a lease (``lease_owner``,
  ``lease_expires_at``) renewed by heartbeats. Every write a worker makes is fenced by its lease and the
  attempt number, so a worker that lost its lease can never overwrite the run's state.
- ``event_seq`` is the run's last event number, incremented by ``UPDATE ... RETURNING`` when an event is
  appended: the row lock makes the numbers gap-free and committed in order, so a watcher resuming after
  event N (SSE ``Last-Event-ID``) can never miss one that commits later with a smaller number.
- ``transcript`` holds the conversation (Anthropic messages) and is set to NULL, with the events deleted,
  when the team's transcript retention has passed (``transcript_purged_at`` says when).
- No foreign keys to teams or principals, as for the request log: a run's record must outlive them.
- Never a credential: events and transcripts pass through the request log's scrubber before they are
  written (``runs.events``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from byollm.store.tables import UID, Base

__all__ = ["Run", "RunEvent"]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"),
        CheckConstraint("actor_kind IN ('user_run', 'agent_run')", name="actor_kind"),
        CheckConstraint("started_by_type IN ('user', 'agent')", name="started_by_type"),
        Index("ix_runs_state_created_at", "state", "created_at"),
        Index("ix_runs_team_uid_created_at", "team_uid", "created_at"),
    )

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    team_uid: Mapped[str] = mapped_column(UID)
    started_by_type: Mapped[str] = mapped_column(String(16))
    started_by_uid: Mapped[str] = mapped_column(UID)
    agent_uid: Mapped[str | None] = mapped_column(UID)
    actor_kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    tools: Mapped[list[Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    # set when an operator-paid fallback served a model call after a Bedrock failure: that failure's class
    degraded_code: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    turns: Mapped[int] = mapped_column(Integer)
    max_turns: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    compute_seconds: Mapped[int] = mapped_column(Integer)
    event_seq: Mapped[int] = mapped_column(Integer)
    steered_seq: Mapped[int] = mapped_column(Integer)  # the last ``steer`` event merged into the transcript
    transcript: Mapped[list[Any] | None] = mapped_column(JSON)
    transcript_purged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class RunEvent(Base):
    """One thing that happened in a run, numbered 1, 2, 3 ... per run (the SSE event id)."""

    __tablename__ = "run_events"

    run_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime]
