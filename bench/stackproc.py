"""The product as separate processes on loopback, for benchmarks that must watch a real ``byollm serve``.

Why processes and not threads: a soak measures the gateway's resident memory and must see exactly what an
operator runs, so the simulator (``byollm sim``) and the gateway (``byollm serve``, configured only through
``BYOLLM_*`` environment variables) each run as their own child process, and nothing of the load generator
shares their heap. This module starts them, waits until they answer, configures a team through the public
admin API, reads a process's resident memory from ``/proc``, and stops what it started.

Loopback only: every process binds 127.0.0.1, and the gateway is told that 127.0.0.0/8 is an allowed
internal network (the SSRF guard would otherwise refuse the simulator as a Bedrock endpoint).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
ACCOUNT = "111122223333"  # the default world's account
DEV_USER = "byollm-dev"  # the default world's Sign-In user (delegated session credentials)
MODEL = "claude-haiku-4-5"

__all__ = [
    "ACCOUNT",
    "HOST",
    "MODEL",
    "Proc",
    "StackError",
    "TeamSetup",
    "bootstrap",
    "configure_team",
    "drop_pg_database",
    "free_port",
    "fresh_pg_database",
    "rss_kb",
    "serve_env",
    "sim_ready",
    "start_serve",
    "start_sim",
]


class StackError(RuntimeError):
    """A process did not start or an admin call failed: the caller's run cannot go on."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int | None:
    """``VmRSS`` of a process in KiB (None once it is gone): what the kernel says it holds in RAM."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Proc:
    """One child process started from this module; its output goes to ``log`` (read when it fails)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (uvicorn shuts down cleanly and byollm flushes its request log), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _spawn(name: str, args: list[str], env: Mapping[str, str], log_dir: Path, url: str) -> Proc:
    log = log_dir / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "byollm.cli.main", *args], env=dict(env), stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(name=name, process=process, url=url, log=log)


def _wait_ready(proc: Proc, path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(proc.url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not proc.alive():
            raise StackError(f"{proc.name} exited with {proc.process.returncode}: {proc.tail()}")
        if time.monotonic() > deadline:
            proc.stop()
            raise StackError(f"{proc.name} did not answer {path} within {timeout_s:.0f} s: {proc.tail()}")
        time.sleep(0.1)


def _child_env() -> dict[str, str]:
    """This environment minus any ``BYOLLM_*`` variable: a child sees only what the caller sets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BYOLLM_")}


def start_sim(log_dir: Path, *, wait: bool = True) -> Proc:
    """``byollm sim`` (default world) on a free loopback port. With ``wait=False`` the caller does other
    set-up while it starts (its URL is known at once) and calls ``sim_ready`` before using it."""
    port = free_port()
    proc = _spawn("simulator", ["sim", "--host", HOST, "--port", str(port)], _child_env(), log_dir,
                  f"http://{HOST}:{port}")
    if wait:
        sim_ready(proc)
    return proc


def sim_ready(proc: Proc) -> None:
    _wait_ready(proc, "/_sim/world")


def serve_env(data_dir: Path, sim_url: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``byollm serve`` whose every upstream is the simulator (SQLite in ``data_dir``
    unless ``database_url`` is given)."""
    env = _child_env()
    env.update({
        "BYOLLM_DATA_DIR": str(data_dir),
        "BYOLLM_KEK": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "BYOLLM_ALLOW_HTTP_ENDPOINTS": "1",
        "BYOLLM_ALLOWED_INTERNAL_NETWORKS": "127.0.0.0/8",
        "BYOLLM_ANTHROPIC_BASE_URL": f"{sim_url}/anthropic",
        "BYOLLM_OPENAI_BASE_URL": f"{sim_url}/openai/v1",
        "BYOLLM_GOOGLE_BASE_URL": f"{sim_url}/google",
        "BYOLLM_STS_ENDPOINT_URL": sim_url,
    })
    if database_url:
        env["BYOLLM_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def bootstrap(env: Mapping[str, str], email: str = "operator@bench.test") -> str:
    """Migrate and create the operator (as ``byollm bootstrap`` does); answers the operator's token."""
    from byollm.control.bootstrap import bootstrap_operator
    from byollm.settings import Settings

    result = asyncio.run(bootstrap_operator(Settings.from_env(env), email=email))
    return result.token


def start_serve(env: Mapping[str, str], log_dir: Path) -> Proc:
    """``byollm serve`` (one worker, uvicorn in the process itself, so its pid is the server's)."""
    port = free_port()
    proc = _spawn("byollm-serve", ["serve", "--host", HOST, "--port", str(port), "--log-level", "warning"], env,
                  log_dir, f"http://{HOST}:{port}")
    _wait_ready(proc, "/healthz")
    return proc


# --- PostgreSQL: a fresh database per run (bootstrap needs an installation without an operator) ------------------


def _plain_pg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    from byollm.settings import normalize_database_url

    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_pg_database(base_url: str) -> str:
    """Create an empty database next to ``base_url``'s; answers its URL."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    from byollm.settings import normalize_database_url

    name = f"byollm_soak_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(_plain_pg_url(base_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return make_url(normalize_database_url(base_url)).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    name = make_url(url).database

    async def drop() -> None:
        conn = await asyncpg.connect(_plain_pg_url(base_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


# --- a team through the public admin API ---------------------------------------------------------------------------


@dataclass
class TeamSetup:
    """What a load generator needs: the team, a member's token, delegated AWS session credentials."""

    team_uid: str
    token: str  # a member's byollm token
    operator_token: str
    aws: dict[str, str]  # credential_process shape: AccessKeyId, SecretAccessKey, SessionToken, Expiration
    provider_keys: dict[str, str]  # the world's direct-provider keys (the operator's keys in byollm)

    def aws_headers(self) -> dict[str, str]:
        return {
            "x-byollm-aws-access-key-id": self.aws["AccessKeyId"],
            "x-byollm-aws-secret-access-key": self.aws["SecretAccessKey"],
            "x-byollm-aws-session-token": self.aws["SessionToken"],
            "x-byollm-aws-expiration": self.aws["Expiration"],
        }


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise StackError(f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}"
                         f" {response.text[:300]}")
    return response.json() if response.content else None


def configure_team(sim_url: str, gateway_url: str, operator_token: str, *, model: str = MODEL,
                   direct_fallback: bool = True, bedrock: bool = True, credential_s: int = 3600) -> TeamSetup:
    """A team whose ``model`` goes to Bedrock (the simulator, delegated session credentials) first and, with
    ``direct_fallback``, to the direct Anthropic API (the operator's key) when Bedrock fails; quotas lifted,
    credits plentiful, zero simulated latency. ``bedrock=False``: the direct API only, which is what serves a
    caller that sends no AWS session (a Bedrock-routed model refuses such a caller)."""
    with httpx.Client(base_url=sim_url, timeout=30) as sim:
        _check(sim.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0}), 200)
        _check(sim.put(f"/_sim/accounts/{ACCOUNT}/quotas/*",
                       json={"requests_per_minute": 10**9, "tokens_per_minute": 10**12}), 200)
        world = _check(sim.get("/_sim/world"), 200)
        keys = {name: conf["api_keys"][0] for name, conf in world.get("direct", {}).items() if conf.get("api_keys")}
        aws = _check(sim.post("/signin/_sim/session-credentials",
                              json={"user": DEV_USER, "duration_s": credential_s}), 200)
    if direct_fallback and "anthropic" not in keys:
        raise StackError("the simulator's world has no direct Anthropic key")
    with httpx.Client(base_url=gateway_url + "/api/v1", timeout=30,
                      headers={"authorization": f"Bearer {operator_token}"}) as admin:
        for provider, key in keys.items():
            _check(admin.put(f"/operator/provider-keys/{provider}", json={"api_key": key}), 200)
        uid = _check(admin.post("/teams", json={"name": f"bench-{secrets.token_hex(4)}"}), 201)["uid"]
        _check(admin.patch(f"/teams/{uid}/bedrock", json={"region": "us-east-1", "endpoint_url": sim_url}), 200)
        _check(admin.patch(f"/teams/{uid}/settings", json={"monthly_ai_credits": 10**12}), 200)
        _check(admin.patch(f"/teams/{uid}/policy", json={"models": {model: {"bedrock": bedrock,
                                                                            "direct": direct_fallback}},
                                                         "fallback_order": []}), 200)
        member = _check(admin.post(f"/teams/{uid}/members", json={"email": "bench@example.test"}), 201)
        token = _check(admin.post(f"/teams/{uid}/tokens", json={"name": "bench", "user_uid": member["user_uid"]}),
                       201)["token"]
    return TeamSetup(team_uid=uid, token=token, operator_token=operator_token, aws=dict(aws), provider_keys=keys)
