"""Helpers for cloud-run tests: a stack tuned for runs, teams with run credits, agents, and waiting.

``running_runs_stack`` is ``support.stack.running_stack`` with short leases and polls so recovery and
claiming happen within a test's patience. ``spawn_byollm`` starts a real ``byollm serve`` or ``byollm
worker`` process against the same database and simulator (for SIGKILL and scale-out tests).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.stack import KEK, Stack, Team, running_stack

RUN_SETTINGS: dict[str, Any] = {
    "run_lease_s": 2.0,
    "run_poll_s": 0.5,
    "run_max_attempts": 2,
    "run_max_turns": 6,
    "run_tool_timeout_s": 10.0,
}
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class RunTeam:
    team: Team
    member: httpx.Client  # a member's client on /api/v1/teams/{uid}
    admin: httpx.Client  # the operator (admin of the team) on /api/v1/teams/{uid}
    member_uid: str

    @property
    def uid(self) -> str:
        return self.team.uid


@contextmanager
def running_runs_stack(data_dir: Path, world: Any = None, **overrides: Any) -> Iterator[Stack]:
    with running_stack(data_dir, world, **{**RUN_SETTINGS, **overrides}) as stack:
        yield stack


def team_client(stack: Stack, token: str, team_uid: str, url: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"{url or stack.url}/api/v1/teams/{team_uid}", timeout=30,
                        headers={"authorization": f"Bearer {token}"})


def run_team(stack: Stack, *, platform: int = 1000, compute: int = 100_000, models: Mapping[str, Any] | None = None,
             **settings: Any) -> RunTeam:
    team = stack.new_team(models, platform_credits=platform, compute_credits=compute, **settings)
    me = httpx.get(f"{stack.url}/api/v1/me", headers={"authorization": f"Bearer {team.token}"}, timeout=10).json()
    return RunTeam(team=team, member=team_client(stack, team.token, team.uid),
                   admin=team_client(stack, stack.operator, team.uid), member_uid=me["principal_uid"])


def new_agent(stack: Stack, team_uid: str, *, tools: list[str] | None = None, default_model: str | None = None,
              role_arn_override: str | None = None) -> tuple[str, str]:
    """Create a named agent and an agent token; returns (agent uid, token)."""
    r = stack.admin.post(f"/teams/{team_uid}/agents", json={
        "name": f"agent-{secrets.token_hex(3)}", "tools": tools or [], "default_model": default_model,
        "role_arn_override": role_arn_override})
    assert r.status_code == 201, r.text
    uid = r.json()["uid"]
    t = stack.admin.post(f"/teams/{team_uid}/tokens", json={"name": "agent", "agent_uid": uid})
    assert t.status_code == 201, t.text
    return uid, t.json()["token"]


def member_token(stack: Stack, team_uid: str, *, role: str = "member") -> tuple[str, str]:
    """Invite another member (or admin); returns (user uid, token)."""
    r = stack.admin.post(f"/teams/{team_uid}/members", json={
        "email": f"m-{secrets.token_hex(4)}@example.test", "role": role})
    assert r.status_code == 201, r.text
    user = r.json()["user_uid"]
    t = stack.admin.post(f"/teams/{team_uid}/tokens", json={"name": "m", "user_uid": user})
    assert t.status_code == 201, t.text
    return user, t.json()["token"]


def start_run(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/runs", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def wait_run(client: httpx.Client, run_uid: str, states: frozenset[str] | set[str] = TERMINAL,
             timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/runs/{run_uid}")
        assert r.status_code == 200, r.text
        run = dict(r.json())
        if run["state"] in states:
            return run
        assert time.monotonic() < deadline, f"run {run_uid} still {run['state']} after {timeout} s"
        time.sleep(0.05)


def events(client: httpx.Client, run_uid: str, after: int = 0) -> list[dict[str, Any]]:
    r = client.get(f"/runs/{run_uid}/events", params={"after": after}, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    return list(r.json())


def wait_event(client: httpx.Client, run_uid: str, kind: str, timeout: float = 20.0,
               **match: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for event in events(client, run_uid):
            if event["kind"] == kind and all(event["data"].get(k) == v for k, v in match.items()):
                return event
        assert time.monotonic() < deadline, f"no {kind} event {match} in run {run_uid} after {timeout} s"
        time.sleep(0.05)


def sse(client: httpx.Client, run_uid: str, last_event_id: int | None = None,
        limit: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """Read the SSE stream until the server ends it (or ``limit`` events); (id, kind, payload) each."""
    import json

    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    got: list[tuple[int, str, dict[str, Any]]] = []
    with client.stream("GET", f"/runs/{run_uid}/events", headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        kind, ident, data = "", 0, ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                got.append((ident, kind, json.loads(data)))
                data = ""
                if limit is not None and len(got) >= limit:
                    break
    return got


def run_log_rows(stack: Stack, team_uid: str, run_uid: str, count: int = 1,
                 timeout: float = 5.0) -> list[dict[str, Any]]:
    """The request-log rows of a run's model calls, once ``count`` are there (or the timeout passed): rows are
    written in batches off the hot path, behind any write transaction holding SQLite's lock, so a row can land
    a little after the run is seen to finish."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in stack.request_log(team_uid) if r["run_uid"] == run_uid]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def ledger(stack: Stack, team_uid: str, database_url: str | None = None) -> list[dict[str, Any]]:
    """The team's ledger rows, read straight from the database."""
    from sqlalchemy import text

    from byollm.store import Store

    settings = stack.settings

    async def read() -> list[dict[str, Any]]:
        async with Store.from_settings(settings) as store, store.engine.connect() as conn:
            rows = await conn.execute(text("SELECT attempt_id, bucket, credits, run_uid FROM credit_ledger"
                                           " WHERE team_uid = :t"), {"t": team_uid})
            return [dict(r._mapping) for r in rows]

    return asyncio.run(read())


# --- separate byollm processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def byollm_env(stack: Stack, database_url: str | None = None, **extra: str) -> dict[str, str]:
    s = stack.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYOLLM_")}
    env.update({
        "BYOLLM_DATA_DIR": str(s.data_dir), "BYOLLM_DATABASE_URL": database_url or s.database_url, "BYOLLM_KEK": KEK,
        "BYOLLM_ALLOW_HTTP_ENDPOINTS": "1", "BYOLLM_ANTHROPIC_BASE_URL": s.anthropic_base_url,
        "BYOLLM_ALLOWED_INTERNAL_NETWORKS": ",".join(s.allowed_internal_networks),
        "BYOLLM_OPENAI_BASE_URL": s.openai_base_url, "BYOLLM_GOOGLE_BASE_URL": s.google_base_url,
        "BYOLLM_STS_ENDPOINT_URL": s.sts_endpoint_url or "", "BYOLLM_RUN_LEASE_SECONDS": str(s.run_lease_s),
        "BYOLLM_RUN_POLL_SECONDS": str(s.run_poll_s), "BYOLLM_RUN_MAX_ATTEMPTS": str(s.run_max_attempts),
        "BYOLLM_RUN_MAX_TURNS": str(s.run_max_turns), "BYOLLM_RUN_TOOL_TIMEOUT_SECONDS": str(s.run_tool_timeout_s),
        "BYOLLM_RUN_TOOLS": ",".join(s.run_tools), "BYOLLM_RUN_EGRESS_HOSTS": ",".join(s.run_egress_hosts),
        "BYOLLM_BWRAP": s.run_bwrap, "BYOLLM_RUN_WORKDIR": str(s.run_workdir_root),
    })
    if s.public_url:
        env["BYOLLM_PUBLIC_URL"] = s.public_url
    env.update(extra)
    return env


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def spawn_byollm(args: list[str], env: Mapping[str, str], log: Path, url: str | None = None) -> Proc:
    handle = log.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "byollm.cli.main", *args], env=dict(env), stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(process=process, log=log, url=url)


def spawn_server(stack: Stack, log: Path, *, wait: bool = True, **env: str) -> Proc:
    port = free_port()
    proc = spawn_byollm(["serve", "--port", str(port), "--log-level", "warning"], byollm_env(stack, **env), log,
                        url=f"http://127.0.0.1:{port}")
    if wait:
        wait_healthy(proc)
    return proc


def wait_healthy(proc: Proc) -> None:
    log = proc.log
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{proc.url}/healthz", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"byollm serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def spawn_worker(stack: Stack, log: Path, concurrency: int = 4, **env: str) -> Proc:
    return spawn_byollm(["worker", "--concurrency", str(concurrency)], byollm_env(stack, **env), log)
