"""One attempt at one run on this worker: the agent loop, its heartbeat, its compute charges.

The loop: model call (through ``Gateway.complete`` with the run's context, so failover, web-identity
credentials and AI credits work exactly as for interactive requests) -> the model's tool calls, each run
by the registry within its limits -> the results go back to the model -> ... until the model ends its
turn with no steering message waiting, or ``max_turns`` model calls were made (then the run succeeds with
``stop_reason`` ``max_turns``: it ended under a limit, like a message that hits ``max_tokens``).

Steering messages are durable ``steer`` events; the loop merges any it has not seen into the conversation
before each model call, and a run only finishes in a transaction that first checks (under the run's row
lock, which the steer endpoint also takes) that no steering message arrived meanwhile. The transcript is
stored after every turn, so another attempt (after this worker died) resumes from the last finished turn.

The heartbeat, every third of the lease (at most every 5 s): charges the compute seconds used so far,
renews the lease (learning whether a cancel was requested), and checks the team's compute credits. It
stops the loop when the lease is lost (someone else may own the run now: this worker then writes
nothing more), when a cancel is requested, or when compute credits run out (``credits_exhausted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from byollm.errors import ByollmError, ErrorClass, NoRouteError
from byollm.gateway.executor import Gateway, InferenceContext, Served
from byollm.policy.types import Actor, ActorKind, BillingBucket, Host, RouteRequest
from byollm.providers.base import CanonicalRequest, CompletedMessage
from byollm.runs.events import clean_messages
from byollm.runs.journal import RunJournal
from byollm.runs.tools import ToolContext, ToolRegistry, ToolResult
from byollm.store import Store, StoreError
from byollm.store import policy as policy_repo
from byollm.store import runs as runs_repo
from byollm.store.ledger import CreditBucket, credits_remaining, period_of
from byollm.store.runs import RunRecord

__all__ = ["ExecutionConfig", "RunCredentials", "RunExecution", "StopReason"]

log = logging.getLogger(__name__)


class RunCredentials(Protocol):
    """What a run needs from the web-identity broker besides credentials: forget them when the run
    ends, and name the assumed role (an identifier, for the run's events)."""

    def forget_run(self, run_uid: str) -> None: ...

    def assumed_role_arn(self, run_uid: str, role_arn: str) -> str | None: ...


class StopReason:
    CANCEL = "cancel"
    CREDITS = "credits"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    lease_s: float
    compute_credits_per_second: Decimal
    tool_timeout_s: float
    tool_output_bytes: int
    workdir_root: Path
    max_output_tokens: int = 4096

    @property
    def heartbeat_s(self) -> float:
        return max(min(self.lease_s / 3, 5.0), 0.05)


def _now() -> datetime:
    return datetime.now(UTC)


class _Stopped(Exception):
    """Raised inside the loop when it must end without another write (finished already, or lease lost)."""


def _merge_user_text(messages: list[dict[str, Any]], texts: Sequence[str]) -> None:
    """Add the user's steering texts as the next user turn (joined to a pending one, e.g. tool results)."""
    blocks = [{"type": "text", "text": text} for text in texts]
    if messages and messages[-1].get("role") == "user":
        content = messages[-1].get("content")
        existing = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        messages[-1] = {"role": "user", "content": existing + blocks}
    else:
        messages.append({"role": "user", "content": blocks})


class RunExecution:
    """Executes ``run`` (already claimed by ``worker_id``: state running, ``run.attempts`` is this attempt)."""

    def __init__(self, run: RunRecord, *, worker_id: str, store: Store, gateway: Gateway, journal: RunJournal,
                 tools: ToolRegistry, config: ExecutionConfig, credentials: RunCredentials | None = None) -> None:
        self.run = run
        self.attempt = run.attempts
        self._worker_id = worker_id
        self._store = store
        self._gateway = gateway
        self._journal = journal
        self._tools = tools
        self._config = config
        self._stop_reason: str | None = None
        self._finishing = False
        self._task: asyncio.Task[None] | None = None
        self._began = time.monotonic()
        self._charged_s = 0
        self._charge_no = 0
        # compute charges are keyed run:<uid>:compute:<attempt>.<execution>:<n>; the execution id keeps a
        # re-run of a released attempt (same attempt number) from colliding with the first one's keys
        self._execution_id = secrets.token_hex(4)
        self._charge_lock = asyncio.Lock()
        self._compute_closed = False
        # per execution, never shared; unguessable, since the runs root may be enterable by the sandbox user
        self._workdir = config.workdir_root / f"{run.uid}-{self._execution_id}-{secrets.token_hex(8)}"
        self._credentials = credentials
        self._role_arn: str | None = None

    @property
    def uid(self) -> str:
        return self.run.uid

    def stop(self, reason: str) -> None:
        """Stop the loop for ``reason`` (the first reason wins); safe to call from any task of this loop."""
        if self._finishing or self._stop_reason is not None:
            return
        self._stop_reason = reason
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- the attempt ---------------------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run the attempt to an end; never raises (every outcome is written to the run, or deliberately not)."""
        self._task = asyncio.current_task()
        self._began = time.monotonic()
        beat: asyncio.Task[None] | None = None
        try:  # the "running" event was written with the claim (``Worker._claim``)
            await self._load_role()
            if not await self._compute_left():
                raise ByollmError(ErrorClass.CREDITS_EXHAUSTED, "the team has no compute credits left for runs")
            beat = asyncio.create_task(self._heartbeat(), name=f"byollm-run-heartbeat-{self.uid}")
            await self._loop()
            await self._end(beat)
        except _Stopped:
            await self._end(beat)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._end(beat)
            await self._stopped()
        except ByollmError as error:
            await self._end(beat)
            await self._finish("failed", error=error)
        except Exception as exc:
            log.error("run %s attempt %d failed unexpectedly (%s)", self.uid, self.attempt, type(exc).__name__)
            await self._end(beat)
            await self._finish("failed", error=ByollmError(ErrorClass.INTERNAL_ERROR,
                                                           f"the run failed inside byollm ({type(exc).__name__})"))
        finally:
            if self._credentials is not None:
                self._credentials.forget_run(self.uid)
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)

    async def _load_role(self) -> None:
        """The role this run's Bedrock calls assume (the agent's override, else the team's), for events."""
        async with self._store.session(readonly=True) as session:
            policy = await policy_repo.get_team_policy(session, team_uid=self.run.team_uid)
        agent = policy.agents.get(self.run.agent_uid) if self.run.agent_uid else None
        self._role_arn = (agent.role_arn_override if agent is not None else None) or policy.bedrock.role_arn

    async def _end(self, beat: asyncio.Task[None] | None) -> None:
        self._finishing = True  # from here on, only the outcome is written; no more stops
        if beat is not None and not beat.done():
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat

    async def _stopped(self) -> None:
        reason = self._stop_reason or StopReason.SHUTDOWN
        if reason == StopReason.CANCEL:
            await self._finish("cancelled")
        elif reason == StopReason.CREDITS:
            await self._finish("failed", error=ByollmError(
                ErrorClass.CREDITS_EXHAUSTED, "the team's compute credits ran out while the run was executing"))
        elif reason == StopReason.SHUTDOWN:
            await self._guard(self._release())
        # LEASE_LOST: the run may belong to another worker now; write nothing

    async def _release(self) -> None:
        await self._charge_compute(final=True)
        async with self._store.session() as session:
            if await runs_repo.release_run(session, run_uid=self.uid, worker_id=self._worker_id,
                                           attempt=self.attempt, now=_now(),
                                           compute_seconds=self._compute_total()):
                await self._journal.append(session, self.uid, "state", {
                    "state": "queued", "attempt": self.attempt, "reason": "its worker shut down; queued again"})
        await self._journal.announce(self.uid)
        await self._journal.signals.notify("queued", self.uid)

    async def _guard(self, work: Any) -> None:
        try:
            await work
        except Exception as exc:  # the lease will expire and recovery will take over
            log.warning("run %s: could not record its outcome (%s); lease recovery will", self.uid,
                        type(exc).__name__)

    async def _finish(self, state: str, *, error: ByollmError | None = None, note: str | None = None,
                      steered: int | None = None) -> bool:
        """Write the terminal state (fenced by the lease). With ``steered``, only if no steering message
        newer than it is waiting; returns False when one is (the loop goes on)."""
        self._finishing = True

        async def write() -> bool:
            await self._charge_compute(final=True)
            async with self._store.session() as session:
                if steered is not None:
                    current = await runs_repo.lock_run(session, run_uid=self.uid)
                    if current.lease_owner != self._worker_id or current.attempts != self.attempt:
                        return True  # lost: stop without writing
                    if await runs_repo.list_events(session, run_uid=self.uid, after=steered, kinds=["steer"],
                                                   limit=1):
                        self._finishing = self._compute_closed = False
                        return False
                data: dict[str, Any] = {"state": state, "attempt": self.attempt,
                                        "compute_seconds": self._compute_total()}
                if note:
                    data["stop_reason"] = note
                if error is not None:
                    data.update(code=error.error_class.code, message=error.detail,
                                remediation=error.error_class.remediation)
                done = await runs_repo.finish_run(
                    session, run_uid=self.uid, worker_id=self._worker_id, attempt=self.attempt, state=state,
                    now=_now(), error_code=error.error_class.code if error else None,
                    error_detail=error.detail if error else None, compute_seconds=self._compute_total())
                if done:
                    await self._journal.append(session, self.uid, "state", data)
            await self._journal.announce(self.uid)
            return True

        try:
            return await write()
        except Exception as exc:
            log.warning("run %s: could not record its end (%s); lease recovery will", self.uid, type(exc).__name__)
            return True

    # --- the agent loop -----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        run = self.run
        messages: list[dict[str, Any]] = [dict(m) for m in run.transcript or ()]
        turns, steered = run.turns, run.steered_seq
        enabled = [name for name in run.tools if self._tools.get(name) is not None]
        specs = self._tools.specs(enabled)
        while True:
            steered = await self._take_steers(messages, steered)
            if turns >= run.max_turns:
                await self._save(messages, turns, steered)
                if await self._finish("succeeded", note="max_turns", steered=steered):
                    return
                continue
            message = await self._model_call(messages, specs, turns + 1)
            turns += 1
            content = [dict(block) for block in message.message.get("content") or []]
            for block in content:
                if block.get("type") == "text" and block.get("text"):
                    await self._journal.record(self.uid, "message", {"turn": turns, "text": block["text"]})
            messages.append({"role": "assistant", "content": content})
            uses = [block for block in content if block.get("type") == "tool_use"]
            if uses:
                results = []
                for use in uses:
                    result = await self._run_tool(use, enabled)
                    results.append({"type": "tool_result", "tool_use_id": use.get("id"), "content": result.output,
                                    "is_error": result.is_error})
                messages.append({"role": "user", "content": results})
                await self._save(messages, turns, steered)
                continue
            await self._save(messages, turns, steered)
            if await self._finish("succeeded", note=str(message.message.get("stop_reason") or "end_turn"),
                                  steered=steered):
                return

    async def _take_steers(self, messages: list[dict[str, Any]], steered: int) -> int:
        async with self._store.session(readonly=True) as session:
            new = await runs_repo.list_events(session, run_uid=self.uid, after=steered, kinds=["steer"])
        if not new:
            return steered
        _merge_user_text(messages, [str(event.data.get("text", "")) for event in new])
        return new[-1].seq

    async def _save(self, messages: Sequence[Mapping[str, Any]], turns: int, steered: int) -> None:
        async with self._store.session() as session:
            saved = await runs_repo.save_progress(session, run_uid=self.uid, worker_id=self._worker_id,
                                                  attempt=self.attempt, transcript=clean_messages(messages),
                                                  turns=turns,
                                                  steered_seq=steered, now=_now())
        if not saved:
            self._stop_reason = StopReason.LEASE_LOST
            raise _Stopped

    def _context(self, turn: int) -> InferenceContext:
        run = self.run
        kind = ActorKind.AGENT_RUN if run.actor_kind == ActorKind.AGENT_RUN.value else ActorKind.USER_RUN
        # the execution id, as in the compute charges' keys: a released attempt re-run under the same number
        # makes new calls, which must not collide with (and be dropped as duplicates of) the first one's rows
        return InferenceContext(
            request_id=f"run_{run.uid}_{self.attempt}.{self._execution_id}_{turn}", api="anthropic",
            team_uid=run.team_uid,
            principal_type=run.started_by_type, principal_uid=run.started_by_uid,
            actor=Actor(kind, run.started_by_uid, run.agent_uid), run_uid=run.uid,
        )

    async def _model_call(self, messages: Sequence[Mapping[str, Any]], specs: Sequence[Mapping[str, Any]],
                          turn: int) -> CompletedMessage:
        run = self.run
        body: dict[str, Any] = {"model": run.model, "max_tokens": self._config.max_output_tokens,
                                "messages": list(messages)}
        if specs:
            body["tools"] = list(specs)
        context = self._context(turn)
        estimate = sum(len(str(m.get("content"))) for m in messages) // 4
        try:
            served = await self._gateway.complete(
                context, CanonicalRequest(body=body, request_id=context.request_id, team_uid=run.team_uid),
                RouteRequest(model=run.model, estimated_input_tokens=estimate,
                             max_output_tokens=self._config.max_output_tokens, uses_tools=bool(specs)))
        except NoRouteError as error:
            for attempt in error.attempts:
                await self._journal.record(self.uid, "route_failure", {
                    "turn": turn, "route": attempt.route, "code": attempt.error_class.code,
                    "message": attempt.detail, "remediation": attempt.error_class.remediation})
            raise
        message: CompletedMessage = served.value
        for attempt in served.failures:  # the routes that failed before this one served: why, and the fix
            await self._journal.record(self.uid, "route_failure", {
                "turn": turn, "route": attempt.route, "code": attempt.error_class.code,
                "message": attempt.detail, "remediation": attempt.error_class.remediation})
        data: dict[str, Any] = {
            "turn": turn, "route": served.route, "model": served.model, "fallbacks": served.fallbacks,
            "input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens,
            "stop_reason": message.message.get("stop_reason"), "billing": served.billing,
            "credits": str(served.credits if served.credits is not None else 0)}
        if served.fallbacks:
            data["fallback_reasons"] = [{"route": a.route, "code": a.error_class.code} for a in served.failures]
        if served.route.startswith("bedrock:") and self._credentials is not None and self._role_arn:
            data["assumed_role_arn"] = self._credentials.assumed_role_arn(self.uid, self._role_arn)
        await self._journal.record(self.uid, "model_call", data)
        await self._note_degraded(served, turn)
        return message

    async def _note_degraded(self, served: Served, turn: int) -> None:
        """An operator-paid route served this call after a Bedrock route failed: the run is degraded (it
        ends ``succeeded`` with the failure's class on the run, and a ``degraded`` event with the fix)."""
        if served.billing != BillingBucket.AI_CREDITS.value:
            return
        failure = next((a for a in served.failures if a.route.startswith(f"{Host.BEDROCK.value}:")), None)
        if failure is None:
            return
        async with self._store.session() as session:
            if not await runs_repo.mark_degraded(session, run_uid=self.uid, worker_id=self._worker_id,
                                                 attempt=self.attempt, code=failure.error_class.code):
                return
            await self._journal.append(session, self.uid, "degraded", {
                "turn": turn, "route": failure.route, "code": failure.error_class.code,
                "message": f"served by {served.route}, paid from AI credits, because {failure.route} failed",
                "remediation": failure.error_class.remediation, "served_route": served.route,
                "credits": str(served.credits if served.credits is not None else 0)})
        await self._journal.announce(self.uid)

    async def _run_tool(self, use: Mapping[str, Any], enabled: Sequence[str]) -> ToolResult:
        name = str(use.get("name", ""))
        arguments = use.get("input") if isinstance(use.get("input"), Mapping) else {}
        await self._journal.record(self.uid, "tool_call", {"id": use.get("id"), "name": name, "input": arguments})
        tool = self._tools.get(name) if name in enabled else None
        if tool is None:
            result = ToolResult(f"the tool {name!r} is not enabled for this run", is_error=True)
        else:
            try:
                result = await tool.run(arguments or {}, ToolContext(
                    workdir=self._workdir, timeout_s=self._config.tool_timeout_s,
                    max_output_bytes=self._config.tool_output_bytes))
            except ByollmError as error:  # e.g. sandbox_unavailable: nothing ran; the run fails with the class
                await self._journal.record(self.uid, "tool_result", {
                    "id": use.get("id"), "name": name, "output": error.detail, "is_error": True,
                    "code": error.error_class.code, "remediation": error.error_class.remediation})
                raise
        await self._journal.record(self.uid, "tool_result", {"id": use.get("id"), "name": name,
                                                             "output": result.output, "is_error": result.is_error})
        return result

    # --- heartbeat and compute credits ----------------------------------------------------------------------

    def _compute_total(self) -> int:
        return self.run.compute_seconds + self._charged_s

    async def _charge_compute(self, *, final: bool = False) -> None:
        """Charge the whole seconds used since the last charge. ``final`` closes the account, so a
        heartbeat racing the end of the run cannot add a charge after the total was written."""
        async with self._charge_lock:
            if self._compute_closed:
                return
            self._compute_closed = final
            seconds = math.ceil(time.monotonic() - self._began)
            delta = seconds - self._charged_s
            if delta <= 0:
                return
            credits = self._config.compute_credits_per_second * delta
            async with self._store.session() as session:  # the charge and the run's total commit together
                now = _now()
                await runs_repo.charge(
                    session, key=f"run:{self.uid}:compute:{self.attempt}.{self._execution_id}:{self._charge_no}",
                    team_uid=self.run.team_uid, run_uid=self.uid, principal_uid=self.run.started_by_uid,
                    bucket=CreditBucket.COMPUTE.value, model=self.run.model, credits=credits, at=now)
                await runs_repo.set_compute_seconds(session, run_uid=self.uid, worker_id=self._worker_id,
                                                    attempt=self.attempt,
                                                    compute_seconds=self.run.compute_seconds + seconds, now=now)
            self._charged_s = seconds
            self._charge_no += 1

    async def _compute_left(self) -> bool:
        async with self._store.session(readonly=True) as session:
            allowances = await runs_repo.team_allowances(session, team_uid=self.run.team_uid)
            left = await credits_remaining(session, team_uid=self.run.team_uid, bucket=CreditBucket.COMPUTE,
                                           allowance=allowances.compute_credits, period=period_of(_now()))
        return left > 0

    async def _heartbeat(self) -> None:
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self._config.heartbeat_s)
            try:
                await self._charge_compute()
                async with self._store.session() as session:
                    cancel = await runs_repo.renew_lease(
                        session, run_uid=self.uid, worker_id=self._worker_id, attempt=self.attempt,
                        lease_s=self._config.lease_s, now=_now(), compute_seconds=self._compute_total())
                left = await self._compute_left()
            except StoreError as exc:
                log.warning("run %s: heartbeat failed (%s)", self.uid, type(exc).__name__)
                if time.monotonic() - renewed > self._config.lease_s * 0.8:
                    self.stop(StopReason.LEASE_LOST)  # stop before another worker may take the run over
                    return
                continue
            if cancel is None:
                self.stop(StopReason.LEASE_LOST)
                return
            renewed = time.monotonic()
            if cancel:
                self.stop(StopReason.CANCEL)
                return
            if not left:
                self.stop(StopReason.CREDITS)
                return
