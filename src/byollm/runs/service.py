"""The runs API's one service: start, list, read, watch, steer and cancel runs, each authorised here.

Who may do what (the same answers through the API and the CLI, which goes through the API):

- start: a team member (admin or member) starts a user-triggered run, or a run of one of the team's named
  agents (actor ``user_run``: the web-identity token's ``sub`` names the user); a named agent's own token
  starts runs of that agent only (actor ``agent_run``, ``service_account`` in the token);
- see (get, events, transcript): the principal that started the run and the team's admins; everyone else
  gets ``not_found`` (a run's existence is not disclosed). Listing: admins see every run of the team,
  members (and agent tokens) the runs they started;
- steer and cancel: the same principals as "see".

Tools (see ``runs.tools``): only tools the operator enables (``BYOLLM_RUN_TOOLS``) exist for runs; asking
for another is ``tool_not_enabled`` (an unknown name is an ``invalid_request``). A named agent's run may use
the agent's tools (all of its still-enabled ones when the request names none); a run without a named agent
may use the operator's ``BYOLLM_RUN_USER_TOOLS`` only, and only those it asks for. Asking for a tool outside
that set is refused (``forbidden``).

Credits: starting a run charges ``run_platform_credits`` platform credits (ledger key
``run:<uid>:platform``) in the transaction that queues it, and is refused with ``credits_exhausted`` when
the team's platform allowance for the month (``TeamSettings.platform_credits``; a monthly allowance like AI
credits) is used up. Compute credits are charged by the worker as the run executes (``runs.execution``).
Two runs started at the same instant can both pass the check: the overspend is bounded by one run each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from byollm.catalog.types import Catalog
from byollm.control.authz import Caller, PrincipalKind
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.auto import is_auto
from byollm.policy.names import enabled_model_ids, resolve_model_name
from byollm.policy.types import ActorKind, Agent, Role, TeamPolicy
from byollm.runs.events import clean_messages
from byollm.runs.journal import RunJournal
from byollm.runs.tools import ToolRegistry
from byollm.store import Store
from byollm.store import policy as policy_repo
from byollm.store import runs as runs_repo
from byollm.store.ledger import CreditBucket, credits_remaining, period_of
from byollm.store.runs import EventRecord, RunRecord

__all__ = ["EventView", "RunLimits", "RunService", "RunView"]

MAX_PROMPT_CHARS = 100_000
WATCH_POLL_S = 2.0


@dataclass(frozen=True, slots=True)
class RunView:
    uid: str
    team_uid: str
    state: str
    model: str
    tools: list[str]
    started_by_type: str
    started_by_uid: str
    agent_uid: str | None
    actor_kind: str
    attempts: int
    max_attempts: int
    turns: int
    max_turns: int
    compute_seconds: int
    cancel_requested: bool
    error_code: str | None
    error_detail: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    transcript_purged: bool = False
    remediation: str | None = None
    # an operator-paid fallback served it after a Bedrock failure of this class (the run still ``succeeded``)
    degraded: bool = False
    degraded_code: str | None = None
    degraded_remediation: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    kind: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunLimits:
    max_attempts: int
    max_turns: int
    platform_credits: int
    user_tools: tuple[str, ...]


def _remediation(code: str | None) -> str | None:
    if code:
        with contextlib.suppress(KeyError):
            return ErrorClass.from_code(code).remediation
    return None


def _view(run: RunRecord, purged: bool = False) -> RunView:
    remediation = _remediation(run.error_code)
    return RunView(
        uid=run.uid, team_uid=run.team_uid, state=run.state, model=run.model, tools=list(run.tools),
        started_by_type=run.started_by_type, started_by_uid=run.started_by_uid, agent_uid=run.agent_uid,
        actor_kind=run.actor_kind, attempts=run.attempts, max_attempts=run.max_attempts, turns=run.turns,
        max_turns=run.max_turns, compute_seconds=run.compute_seconds, cancel_requested=run.cancel_requested,
        error_code=run.error_code, error_detail=run.error_detail, created_at=run.created_at,
        started_at=run.started_at, finished_at=run.finished_at, transcript_purged=purged or run.transcript is None,
        remediation=remediation, degraded=run.degraded_code is not None, degraded_code=run.degraded_code,
        degraded_remediation=_remediation(run.degraded_code),
    )


def _event_view(event: EventRecord) -> EventView:
    return EventView(seq=event.seq, kind=event.kind, at=event.at, data=dict(event.data))


def _now() -> datetime:
    return datetime.now(UTC)


class RunService:
    def __init__(self, *, store: Store, catalog: Catalog, journal: RunJournal, tools: ToolRegistry,
                 limits: RunLimits) -> None:
        self._store = store
        self._catalog = catalog
        self._journal = journal
        self._tools = tools
        self._limits = limits
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._unsubscribe = journal.signals.subscribe(self._on_signal)

    def close(self) -> None:
        self._unsubscribe()
        for events in self._watchers.values():
            for event in events:
                event.set()

    def _on_signal(self, kind: str, run_uid: str) -> None:
        if kind == "event":
            for event in self._watchers.get(run_uid, ()):
                event.set()

    # --- authorisation -----------------------------------------------------------------------------------

    @staticmethod
    def _member_role(caller: Caller, team_uid: str) -> Role | None:
        """The caller's role, or None for an agent token of this team; ``not_found`` for outsiders."""
        if caller.kind is PrincipalKind.AGENT:
            if caller.token_team_uid != team_uid:
                raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=team_uid)
            return None
        role = caller.role_in(team_uid)
        if role is None:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=team_uid)
        return role

    def _visible(self, caller: Caller, run: RunRecord) -> None:
        role = self._member_role(caller, run.team_uid)
        if role is Role.ADMIN or run.started_by_uid == caller.principal_uid:
            return
        raise ByollmError(ErrorClass.NOT_FOUND, "no such run in this team", run_uid=run.uid)

    # --- start ---------------------------------------------------------------------------------------------

    def _tools_for(self, agent: Agent | None, requested: list[str] | None) -> list[str]:
        for name in requested or []:
            if name not in self._tools.names:
                known = ", ".join(sorted(self._tools.names)) or "none"
                raise ByollmError(ErrorClass.INVALID_REQUEST, f"tools: unknown tool {name!r} (known: {known})")
            if self._tools.get(name) is None:
                raise ByollmError(ErrorClass.TOOL_NOT_ENABLED,
                                  f"tools: {name!r} is not enabled on this byollm deployment")
        allowed = list(agent.tools) if agent is not None else list(self._limits.user_tools)
        if requested is None:  # a named agent's tools that the operator still enables
            return [n for n in allowed if self._tools.get(n) is not None] if agent is not None else []
        refused = [n for n in requested if n not in allowed]
        if refused:
            whose = f"agent {agent.name!r}" if agent is not None else "runs without a named agent"
            raise ByollmError(ErrorClass.FORBIDDEN,
                              f"tools: {', '.join(refused)} not enabled for {whose}; a team admin enables tools"
                              " on the agent (`byollm admin agents update --tools ...`)")
        return list(dict.fromkeys(requested))

    def _model_for(self, policy: TeamPolicy, agent: Agent | None, model: str | None) -> str:
        name = (model or "").strip() or (agent.default_model if agent is not None else None) or ""
        if not name:
            raise ByollmError(ErrorClass.INVALID_REQUEST,
                              "model: name a model or `auto` (or start a named agent that has a default model)")
        if is_auto(name):
            return "auto"
        resolved = resolve_model_name(policy, self._catalog, name)  # the team's aliases and family mapping too
        if resolved is None:
            usable = enabled_model_ids(policy, self._catalog)
            raise ByollmError(ErrorClass.MODEL_NOT_FOUND,
                              f"model: unknown model {name[:100]!r}; your team can use: {', '.join(usable) or 'none'}",
                              model=name[:100], available=usable)
        return resolved.model.id

    @staticmethod
    def _agent_named(policy: TeamPolicy, name_or_uid: str) -> Agent:
        agent = policy.agents.get(name_or_uid) or next(
            (a for a in policy.agents.values() if a.name == name_or_uid), None)
        if agent is None:
            raise ByollmError(ErrorClass.NOT_FOUND, f"no agent {name_or_uid!r} in this team")
        return agent

    async def start(self, caller: Caller, team_uid: str, *, prompt: str, model: str | None = None,
                    agent: str | None = None, tools: list[str] | None = None,
                    max_turns: int | None = None) -> RunView:
        self._member_role(caller, team_uid)
        if not prompt.strip():
            raise ByollmError(ErrorClass.INVALID_REQUEST, "prompt: must not be empty")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ByollmError(ErrorClass.INVALID_REQUEST, f"prompt: longer than {MAX_PROMPT_CHARS} characters")
        turns = self._limits.max_turns if max_turns is None else max_turns
        if not 1 <= turns <= self._limits.max_turns:
            raise ByollmError(ErrorClass.INVALID_REQUEST, f"max_turns: must be between 1 and {self._limits.max_turns}")
        now = _now()
        async with self._store.session() as session:
            policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            if caller.kind is PrincipalKind.AGENT:
                if agent is not None and agent not in (caller.principal_uid,) and (
                        self._agent_named(policy, agent).uid != caller.principal_uid):
                    raise ByollmError(ErrorClass.FORBIDDEN, "an agent's token starts runs of that agent only")
                named: Agent | None = self._agent_named(policy, caller.principal_uid)
                actor, started_by_type = ActorKind.AGENT_RUN, "agent"
            else:
                named = self._agent_named(policy, agent) if agent else None
                actor, started_by_type = ActorKind.USER_RUN, "user"
            run_tools = self._tools_for(named, tools)
            run_model = self._model_for(policy, named, model)
            price = Decimal(self._limits.platform_credits)
            left = await credits_remaining(session, team_uid=team_uid, bucket=CreditBucket.PLATFORM,
                                           allowance=policy.settings.platform_credits, period=period_of(now))
            if left <= 0 or left < price:
                raise ByollmError(ErrorClass.CREDITS_EXHAUSTED,
                                  "the team has no platform credits left for cloud runs this month; a team admin"
                                  " can raise the platform credit allowance", bucket="platform")
            run = await runs_repo.create_run(
                session, team_uid=team_uid, started_by_type=started_by_type, started_by_uid=caller.principal_uid,
                agent_uid=named.uid if named else None, actor_kind=actor.value, model=run_model, tools=run_tools,
                transcript=clean_messages([{"role": "user", "content": prompt}]),
                max_attempts=self._limits.max_attempts, max_turns=turns, now=now)
            if price > 0:
                await runs_repo.charge(session, key=f"run:{run.uid}:platform", team_uid=team_uid, run_uid=run.uid,
                                       principal_uid=caller.principal_uid, bucket=CreditBucket.PLATFORM.value,
                                       model=run_model, credits=price, at=now)
            await self._journal.append(session, run.uid, "state", {"state": "queued", "attempt": 0})
            await self._journal.append(session, run.uid, "prompt", {"text": prompt, "by": caller.principal_uid})
            if price > 0:
                await self._journal.append(session, run.uid, "credits", {
                    "bucket": "platform", "credits": str(price), "key": f"run:{run.uid}:platform"})
        await self._journal.signals.notify("queued", run.uid)
        return _view(run)

    # --- read ----------------------------------------------------------------------------------------------

    async def list_runs(self, caller: Caller, team_uid: str, *, state: str | None = None,
                   limit: int = 100) -> list[RunView]:
        role = self._member_role(caller, team_uid)
        own = None if role is Role.ADMIN else caller.principal_uid
        async with self._store.session(readonly=True) as session:
            runs = await runs_repo.list_runs(session, team_uid=team_uid, started_by_uid=own, state=state,
                                             limit=max(1, min(limit, 1000)))
        return [_view(r) for r in runs]

    async def _get(self, caller: Caller, team_uid: str, run_uid: str) -> RunRecord:
        self._member_role(caller, team_uid)
        async with self._store.session(readonly=True) as session:
            run = await runs_repo.get_run(session, run_uid=run_uid, team_uid=team_uid)
        self._visible(caller, run)
        return run

    async def get(self, caller: Caller, team_uid: str, run_uid: str) -> RunView:
        return _view(await self._get(caller, team_uid, run_uid))

    async def transcript(self, caller: Caller, team_uid: str, run_uid: str) -> list[Mapping[str, Any]]:
        run = await self._get(caller, team_uid, run_uid)
        if run.transcript is None:
            raise ByollmError(ErrorClass.NOT_FOUND, "the transcript was purged after the team's retention period")
        return list(run.transcript)

    async def events(self, caller: Caller, team_uid: str, run_uid: str, *, after: int = 0) -> list[EventView]:
        await self._get(caller, team_uid, run_uid)
        async with self._store.session(readonly=True) as session:
            return [_event_view(e) for e in await runs_repo.list_events(session, run_uid=run_uid, after=after)]

    async def watch(self, caller: Caller, team_uid: str, run_uid: str, *, after: int = 0,
                    follow: bool = True) -> AsyncIterator[EventView | None]:
        """Events after ``after``, then new ones as they happen, until the run has ended and all its events
        were sent. Authorised before the first event; a wake-up signal or a slow poll reads new events.
        ``None`` is yielded after every idle wait, so the caller can send keep-alives."""
        await self._get(caller, team_uid, run_uid)
        return self._follow(run_uid, after, follow)

    async def _follow(self, run_uid: str, after: int, follow: bool) -> AsyncIterator[EventView | None]:
        wake = asyncio.Event()
        self._watchers.setdefault(run_uid, set()).add(wake)
        try:
            while True:
                wake.clear()
                async with self._store.session(readonly=True) as session:
                    run = await runs_repo.get_run(session, run_uid=run_uid)
                    events = await runs_repo.list_events(session, run_uid=run_uid, after=after)
                for event in events:
                    after = event.seq
                    yield _event_view(event)
                if not follow or (run.terminal and after >= run.event_seq):
                    return
                if events:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WATCH_POLL_S):
                        await wake.wait()
                yield None
        finally:
            watchers = self._watchers.get(run_uid)
            if watchers is not None:
                watchers.discard(wake)
                if not watchers:
                    del self._watchers[run_uid]

    # --- steer and cancel ----------------------------------------------------------------------------------

    async def steer(self, caller: Caller, team_uid: str, run_uid: str, *, message: str) -> EventView:
        """Add a user message to a queued or running run; the worker merges it before its next model call."""
        await self._get(caller, team_uid, run_uid)
        if not message.strip():
            raise ByollmError(ErrorClass.INVALID_REQUEST, "message: must not be empty")
        if len(message) > MAX_PROMPT_CHARS:
            raise ByollmError(ErrorClass.INVALID_REQUEST, f"message: longer than {MAX_PROMPT_CHARS} characters")
        async with self._store.session() as session:
            run = await runs_repo.lock_run(session, run_uid=run_uid, team_uid=team_uid)
            if run.terminal:
                raise ByollmError(ErrorClass.CONFLICT, f"the run has already {run.state}; start a new run")
            seq = await self._journal.append(session, run_uid, "steer", {"text": message, "by": caller.principal_uid})
            events = await runs_repo.list_events(session, run_uid=run_uid, after=seq - 1, limit=1)
        await self._journal.announce(run_uid)
        return _event_view(events[0])

    async def withdraw(self, team_uid: str, principal_uid: str, reason: str) -> int:
        """Cancel every queued or running run ``principal_uid`` started in ``team_uid``: their access was
        withdrawn (removed, demoted, a token revoked), and a run must not outlive the access that started it.
        Returns how many runs were asked to stop. A running run stops at its worker's next check (NOTIFY,
        or its heartbeat), whichever process executes it."""
        now = _now()
        stopped: list[str] = []
        async with self._store.session() as session:
            for state in ("queued", "running"):
                for run in await runs_repo.list_runs(session, team_uid=team_uid, started_by_uid=principal_uid,
                                                     state=state, limit=10_000):
                    after = await runs_repo.request_cancel(session, run_uid=run.uid, now=now)
                    await self._journal.append(session, run.uid, "cancel_requested",
                                               {"by": "byollm", "reason": reason})
                    if after == "cancelled":
                        await self._journal.append(session, run.uid, "state", {"state": "cancelled", "attempt": 0})
                    stopped.append(run.uid)
        for run_uid in stopped:
            await self._journal.signals.notify("cancel", run_uid)
            await self._journal.announce(run_uid)
        return len(stopped)

    async def cancel(self, caller: Caller, team_uid: str, run_uid: str) -> RunView:
        """Cancel a queued run at once; ask the worker executing a running one to stop (NOTIFY, and its
        heartbeat reads the flag too). Cancelling a finished run changes nothing."""
        await self._get(caller, team_uid, run_uid)
        now = _now()
        async with self._store.session() as session:
            before = await runs_repo.get_run(session, run_uid=run_uid, team_uid=team_uid)
            if not before.terminal:
                state = await runs_repo.request_cancel(session, run_uid=run_uid, now=now)
                await self._journal.append(session, run_uid, "cancel_requested", {"by": caller.principal_uid})
                if state == "cancelled":
                    await self._journal.append(session, run_uid, "state", {"state": "cancelled", "attempt": 0})
            run = await runs_repo.get_run(session, run_uid=run_uid)
        if not before.terminal:
            await self._journal.signals.notify("cancel", run_uid)
            await self._journal.announce(run_uid)
        return _view(run)
