"""``byollm runs ...``: start, list, watch, steer and cancel cloud agent runs over the runs API.

Like ``byollm admin``, every command goes through the server with the caller's token (``--token`` or
``BYOLLM_TOKEN``) at ``--url`` (``BYOLLM_URL``), so it can do exactly what that token may do. ``watch``
follows the run's Server-Sent Events and, when the connection drops, reconnects with ``Last-Event-ID``, so
it neither misses nor repeats an event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from byollm.cli.admin_client import AdminClient, api_session

__all__ = ["register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

runs = typer.Typer(help="Cloud agent runs: start, list, watch, steer, cancel.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="BYOLLM_URL", help="byollm server URL.")]
Token = Annotated[str, typer.Option("--token", envvar="BYOLLM_TOKEN", help="Your byollm token.",
                                    show_default=False)]
Team = Annotated[str, typer.Option("--team", "-t", envvar="BYOLLM_TEAM", help="Team UID.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
COLUMNS = ["uid", "state", "model", "agent_uid", "started_by_uid", "turns", "compute_seconds", "error_code",
           "created_at"]


def register(app: typer.Typer) -> None:
    app.add_typer(runs, name="runs")


def _client(url: str, token: str) -> AbstractContextManager[AdminClient]:
    return api_session(url, token, err=err)


def _show(data: Any, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    if isinstance(data, dict):  # one run: a field per line, nothing truncated
        for key, value in data.items():
            if value is not None and value != []:
                out.print(f"[bold]{key}[/]: {value}", soft_wrap=True)
        return
    rows = data
    table = Table()
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        cells = {c: "" if row.get(c) is None else str(row.get(c)) for c in COLUMNS}
        if row.get("degraded"):  # succeeded, but on a paid fallback after a Bedrock failure
            cells["state"] = f"{cells['state']} [yellow](degraded: {row.get('degraded_code')})[/]"
        table.add_row(*cells.values())
    out.print(table)


@runs.command("start")
def start(
    prompt: Annotated[str, typer.Argument(help="What the agent should do.")],
    team: Team,
    model: Annotated[str | None, typer.Option(help="Model id, alias or `auto` (default: the agent's).")] = None,
    agent: Annotated[str | None, typer.Option(help="A named agent (name or UID).")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Enable a tool (repeatable).")] = None,
    max_turns: Annotated[int | None, typer.Option(help="At most this many model calls.")] = None,
    watch_run: Annotated[bool, typer.Option("--watch", help="Follow the run's events until it ends.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Start a run; it is queued and a worker executes it."""
    body: dict[str, Any] = {"prompt": prompt, "model": model, "agent": agent, "max_turns": max_turns}
    if tool:
        body["tools"] = tool
    with _client(url, token) as client:
        run = client.post(f"/teams/{team}/runs", {k: v for k, v in body.items() if v is not None})
    _show(run, as_json)
    if watch_run:
        _watch(url, token, team, run["uid"], 0, as_json)


@runs.command("list")
def list_runs(team: Team, state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
              limit: int = 50, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Runs of the team (admins: all; members: their own), newest first."""
    with _client(url, token) as client:
        _show(client.get(f"/teams/{team}/runs", state=state, limit=limit), as_json)


@runs.command("get")
def get(run_uid: str, team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """One run."""
    with _client(url, token) as client:
        _show(client.get(f"/teams/{team}/runs/{run_uid}"), as_json)


@runs.command("watch")
def watch(run_uid: str, team: Team, after: Annotated[int, typer.Option(help="Start after this event.")] = 0,
          url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Follow a run's events until it ends (reconnecting with Last-Event-ID if the connection drops)."""
    _watch(url, token, team, run_uid, after, as_json)


@runs.command("steer")
def steer(run_uid: str, message: str, team: Team, url: Url = DEFAULT_URL, token: Token = "",
          as_json: AsJson = False) -> None:
    """Add a user message to a queued or running run."""
    with _client(url, token) as client:
        event = client.post(f"/teams/{team}/runs/{run_uid}/steer", {"message": message})
    if as_json:
        out.print_json(json.dumps(event, default=str))
    else:
        out.print(f"Steering message added (event {event['seq']}).")


@runs.command("cancel")
def cancel(run_uid: str, team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Cancel a run (at once when queued; the worker stops a running one within moments)."""
    with _client(url, token) as client:
        _show(client.post(f"/teams/{team}/runs/{run_uid}/cancel", {}), as_json)


def _render(kind: str, payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(payload, default=str), soft_wrap=True)
        return
    data = payload.get("data") or {}
    if kind == "state":
        extra = f" - {data.get('code')}: {data.get('message')}" if data.get("code") else ""
        out.print(f"[bold]{data.get('state')}[/]{extra}")
        if data.get("remediation"):
            out.print(f"  {data['remediation']}")
    elif kind in ("message", "prompt", "steer"):
        who = {"message": "assistant", "prompt": "you", "steer": "you (steer)"}[kind]
        out.print(f"[cyan]{who}:[/] {data.get('text')}", soft_wrap=True)
    elif kind == "tool_call":
        out.print(f"[magenta]tool {data.get('name')}[/] {json.dumps(data.get('input'))}", soft_wrap=True)
    elif kind == "tool_result":
        out.print(f"[magenta]result[/]{' (error)' if data.get('is_error') else ''}: {data.get('output')}",
                  soft_wrap=True)
    elif kind == "model_call":
        out.print(f"[dim]model call {data.get('turn')}: {data.get('route')} ({data.get('fallbacks')} fallbacks,"
                  f" {data.get('billing') or '?'}, {data.get('credits') or 0} AI credits)[/]")
    elif kind in ("route_failure", "degraded"):
        label = "degraded" if kind == "degraded" else "route failed"
        out.print(f"[yellow]{label}: {data.get('route')}: {data.get('code')}[/] {data.get('message') or ''}",
                  soft_wrap=True)
        if data.get("remediation"):
            out.print(f"  fix: {data['remediation']}", soft_wrap=True)
    else:
        out.print(f"[dim]{kind}: {json.dumps(data, default=str)}[/]", soft_wrap=True)


def _watch(url: str, token: str, team: str, run_uid: str, after: int, as_json: bool) -> None:
    """Follow the SSE stream; reconnect (bounded) with Last-Event-ID until the run's final state arrives."""
    last, failures = after, 0
    path = f"{url.rstrip('/')}/api/v1/teams/{team}/runs/{run_uid}/events"
    while True:
        headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream", "last-event-id": str(last)}
        try:
            with httpx.stream("GET", path, headers=headers, timeout=httpx.Timeout(10.0, read=60.0)) as response:
                if response.status_code >= 400:
                    response.read()
                    info = response.json().get("error", {})
                    err.print(f"[red]Error:[/] {info.get('message')} [dim]({info.get('code')})[/]")
                    raise typer.Exit(1)
                for kind, event_id, payload in _frames(response.iter_lines()):
                    failures = 0
                    last = event_id
                    _render(kind, payload, as_json)
                    if kind == "state" and (payload.get("data") or {}).get("state") in TERMINAL:
                        return
        except httpx.HTTPError as exc:
            failures += 1
            if failures > 5:
                err.print(f"[red]Lost the connection to the server[/] ({type(exc).__name__}).")
                raise typer.Exit(1) from None
            time.sleep(min(0.5 * 2**failures, 5.0))
            continue
        return  # the server ended the stream: the run has ended and every event was sent


def _frames(lines: Iterator[str]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    kind, event_id = "message", 0
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield kind, event_id, json.loads("\n".join(data))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "id":
            event_id = int(value)
        elif name == "data":
            data.append(value)
