"""The runs API (``/api/v1/teams/{team}/runs``): start, list, read, watch (SSE), steer and cancel.

Thin handlers: parse, one ``RunService`` call, return its view. Authorisation lives in the service.
Watching: ``GET .../runs/{run}/events`` streams Server-Sent Events (``id`` = the event's number, ``event`` =
its kind, ``data`` = JSON) until the run has ended; a client that reconnects sends ``Last-Event-ID`` (or
``?after=N``) and gets exactly the events after it. With ``Accept: application/json`` the same endpoint
returns the events so far as a JSON list.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from byollm.api.auth import current_caller, services_of
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.control.authz import Caller
from byollm.errors import ByollmError, ErrorClass
from byollm.providers.sse import encode_sse
from byollm.runs.service import EventView, RunService, RunView

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/teams/{team_uid}/runs", tags=["runs"],
                   responses=error_responses(ApiShape.BYOLLM, *AT_THE_DOOR, 403, 404))

KEEPALIVE_S = 15.0

CallerDep = Annotated[Caller, Depends(current_caller)]


def _runs(request: Request) -> RunService:
    runs = services_of(request).runs
    if runs is None:
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "cloud runs are not available in this byollm process")
    return runs.service


RunsDep = Annotated[RunService, Depends(_runs)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunStart(_In):
    prompt: str = Field(min_length=1, max_length=100_000)
    model: str | None = Field(default=None, max_length=200, description="A model id, alias or `auto`.")
    agent: str | None = Field(default=None, max_length=200, description="A named agent's name or UID.")
    tools: list[str] | None = Field(default=None, max_length=20,
                                    description="Tools to enable (default: the agent's; none without an agent).")
    max_turns: int | None = Field(default=None, ge=1, le=1000)


class RunSteer(_In):
    message: str = Field(min_length=1, max_length=100_000)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Start a run (queued)",
             responses=error_responses(ApiShape.BYOLLM, 402))
async def start_run(team_uid: str, body: RunStart, caller: CallerDep, runs: RunsDep) -> RunView:
    return await runs.start(caller, team_uid, prompt=body.prompt, model=body.model, agent=body.agent,
                            tools=body.tools, max_turns=body.max_turns)


@router.get("", summary="Runs: admins see all of the team's, members their own")
async def list_runs(team_uid: str, caller: CallerDep, runs: RunsDep,
                    state: Annotated[str | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[RunView]:
    return await runs.list_runs(caller, team_uid, state=state, limit=limit)


@router.get("/{run_uid}", summary="One run")
async def get_run(team_uid: str, run_uid: str, caller: CallerDep, runs: RunsDep) -> RunView:
    return await runs.get(caller, team_uid, run_uid)


@router.get("/{run_uid}/transcript", summary="The run's conversation (until the retention period ends)")
async def get_transcript(team_uid: str, run_uid: str, caller: CallerDep, runs: RunsDep) -> list[dict[str, Any]]:
    return [dict(m) for m in await runs.transcript(caller, team_uid, run_uid)]


# one Server-Sent Event as ``_frame`` writes it (OpenAPI 3.2's ``itemSchema``)
_EVENT_FRAME: dict[str, Any] = {"type": "object", "required": ["id", "event", "data"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9]+$"}, "event": {"type": "string"},
    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
        "type": "object", "required": ["seq", "kind", "at", "data"]}}}}


def _frame(event: EventView) -> bytes:
    data = orjson.dumps({"seq": event.seq, "kind": event.kind, "at": event.at.isoformat(), "data": event.data})
    return f"id: {event.seq}\n".encode() + encode_sse(event.kind, data)


@router.get("/{run_uid}/events", summary="The run's events: SSE until the run ends (or JSON so far)",
            response_model=None, responses={200: {"description": "Server-Sent Events, or a JSON list of events",
                                                  "content": {"application/json": {"schema": {"type": "array"}},
                                                              "text/event-stream": {"itemSchema": _EVENT_FRAME}}}})
async def run_events(
    team_uid: str, run_uid: str, request: Request, caller: CallerDep, runs: RunsDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    follow: Annotated[bool, Query()] = True,
    last_event_id: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> StreamingResponse | list[dict[str, Any]]:
    start = after if after is not None else _event_id(last_event_id)
    if accept is not None and "application/json" in accept and "text/event-stream" not in accept:
        return [asdict(e) for e in await runs.events(caller, team_uid, run_uid, after=start)]
    events = await runs.watch(caller, team_uid, run_uid, after=start, follow=follow)

    async def body() -> AsyncIterator[bytes]:
        quiet_since = time.monotonic()
        async for event in events:
            if event is not None:
                quiet_since = time.monotonic()
                yield _frame(event)
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def _event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "Last-Event-ID: expected an event number") from None


@router.post("/{run_uid}/steer", status_code=status.HTTP_201_CREATED, summary="Add a user message to a run",
             responses=error_responses(ApiShape.BYOLLM, 409))
async def steer_run(team_uid: str, run_uid: str, body: RunSteer, caller: CallerDep, runs: RunsDep) -> EventView:
    return await runs.steer(caller, team_uid, run_uid, message=body.message)


@router.post("/{run_uid}/cancel", summary="Cancel a run", responses=error_responses(ApiShape.BYOLLM, 409))
async def cancel_run(team_uid: str, run_uid: str, caller: CallerDep, runs: RunsDep) -> RunView:
    return await runs.cancel(caller, team_uid, run_uid)
