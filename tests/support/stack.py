"""The whole product on loopback for tests: the simulator, a byollm server pointed at it, and teams.

``Stack`` owns a ``SimServer`` (AWS and the direct providers) and a byollm server whose direct-provider
base URLs, STS endpoint and teams' Bedrock endpoint are the simulator. ``new_team`` creates an isolated team
with a member token, so tests that change policy never disturb each other.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from byollm.api.app import create_app
from byollm.api.serving import ServerThread, bind_socket, socket_url
from byollm.control.bootstrap import bootstrap_operator
from byollm.credentials.delegated import (
    HEADER_ACCESS_KEY_ID,
    HEADER_EXPIRATION,
    HEADER_SECRET_ACCESS_KEY,
    HEADER_SESSION_TOKEN,
)
from byollm.settings import Settings
from byollm.sim import SimServer

KEK = "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="  # 32 bytes of 0x04: tests only
ACCOUNT = "111122223333"
DEV_USER = "byollm-dev"
LOOPBACK_NETWORKS = ("127.0.0.0/8",)  # teams point at the simulator on loopback: the egress guard must allow it

DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "claude-opus-4-7": {"bedrock": True, "direct": True},
    "claude-sonnet-4-6": {"bedrock": True, "direct": True},
    "claude-haiku-4-5": {"bedrock": True, "direct": True},
    "gpt-5": {"direct": True},
    "gemini-2.5-flash": {"direct": True},
}
# the same models on their direct APIs only: what a test of the direct route without AWS credentials uses, since
# a credential-less request for a Bedrock-routed model is refused (issue 16)
DIRECT_MODELS: dict[str, dict[str, Any]] = {model: {"direct": True} for model in DEFAULT_MODELS}


@dataclass
class Team:
    uid: str
    token: str  # a member's token, scoped to this team
    admin: httpx.Client  # the operator's admin client (admin of this team)

    def policy(self, **changes: Any) -> dict[str, Any]:
        r = self.admin.patch(f"/teams/{self.uid}/policy", json=changes)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def settings(self, **changes: Any) -> dict[str, Any]:
        r = self.admin.patch(f"/teams/{self.uid}/settings", json=changes)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def bedrock(self, **changes: Any) -> dict[str, Any]:
        r = self.admin.patch(f"/teams/{self.uid}/bedrock", json=changes)
        assert r.status_code == 200, r.text
        return dict(r.json())


@dataclass
class Stack:
    sim: SimServer
    url: str
    settings: Settings
    operator: str
    admin: httpx.Client
    sim_http: httpx.Client = field(repr=False)
    provider_keys: Mapping[str, str] = field(default_factory=dict)

    # --- simulator -----------------------------------------------------------------------------------------

    def session_credentials(self, user: str = DEV_USER, duration_s: int = 900) -> dict[str, str]:
        r = self.sim_http.post("/signin/_sim/session-credentials", json={"user": user, "duration_s": duration_s})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def delegated_headers(self, user: str = DEV_USER, duration_s: int = 900) -> dict[str, str]:
        creds = self.session_credentials(user, duration_s)
        return {
            HEADER_ACCESS_KEY_ID: creds["AccessKeyId"],
            HEADER_SECRET_ACCESS_KEY: creds["SecretAccessKey"],
            HEADER_SESSION_TOKEN: creds["SessionToken"],
            HEADER_EXPIRATION: creds["Expiration"],
        }

    def fault(self, **rule: Any) -> str:
        r = self.sim_http.post("/_sim/faults", json=rule)
        assert r.status_code in (200, 201), r.text
        return str(r.json().get("id") or r.json().get("rule_id"))

    def clear_faults(self) -> None:
        self.sim_http.delete("/_sim/faults")

    def journal(self, service: str | None = None) -> list[dict[str, Any]]:
        params = {"service": service} if service else {}
        r = self.sim_http.get("/_sim/requests", params={**params, "limit": 10000})
        assert r.status_code == 200, r.text
        entries = r.json()["requests"]
        return [e for e in entries if e["service"] != "sim-admin" and not e["path"].startswith("/signin/_sim/")]

    def clear_journal(self) -> None:
        self.sim_http.delete("/_sim/requests")

    # --- byollm --------------------------------------------------------------------------------------------

    def new_team(self, models: Mapping[str, Mapping[str, Any]] | None = None, *, fallback: list[str] | None = None,
                 region: str = "us-east-1", credits: int = 1_000_000, **settings: Any) -> Team:
        r = self.admin.post("/teams", json={"name": f"team-{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        uid = r.json()["uid"]
        team = Team(uid=uid, token="", admin=self.admin)
        team.bedrock(region=region, endpoint_url=self.sim.url)
        team.settings(monthly_ai_credits=credits, **settings)
        team.policy(models=dict(models if models is not None else DEFAULT_MODELS),
                    fallback_order=fallback if fallback is not None else [])
        member = self.admin.post(f"/teams/{uid}/members", json={"email": f"dev-{secrets.token_hex(4)}@example.test"})
        assert member.status_code == 201, member.text
        issued = self.admin.post(f"/teams/{uid}/tokens", json={"name": "dev", "user_uid": member.json()["user_uid"]})
        assert issued.status_code == 201, issued.text
        team.token = issued.json()["token"]
        return team

    def gateway(self, token: str, extra_headers: Mapping[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"authorization": f"Bearer {token}", **(extra_headers or {})})

    def request_log(self, team_uid: str) -> list[dict[str, Any]]:
        """The request-log rows of a team, read through the store after flushing the writer."""
        from byollm.store import Store
        from byollm.store.usage import list_requests

        async def read() -> list[dict[str, Any]]:
            async with Store.from_settings(self.settings) as store, store.session(readonly=True) as session:
                rows = await list_requests(session, team_uid=team_uid, limit=1000)
            return [r.__dict__ if hasattr(r, "__dict__") else _as_dict(r) for r in rows]

        return asyncio.run(read())


def _as_dict(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def world_provider_keys(sim: SimServer) -> dict[str, str]:
    world = httpx.get(sim.url + "/_sim/world", timeout=10).json()
    providers = world.get("direct", {})
    return {name: conf["api_keys"][0] for name, conf in providers.items() if conf.get("api_keys")}


@contextmanager
def runs_root() -> Iterator[Path]:
    """A runs root outside the data directory that the tool sandbox's user can enter even when the tests run
    as root (pytest's own tmp directories are 0700, and bubblewrap resolves the path as that user)."""
    root = Path(tempfile.mkdtemp(prefix="byollm-runs-"))
    root.chmod(0o711)
    try:
        yield root / "runs"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_stack(data_dir: Path, world: Any = None, *, configure: Callable[[FastAPI], None] | None = None,
                  **settings_overrides: Any) -> Iterator[Stack]:
    """``configure`` may add routes to the app before it serves (a test's own door onto the real gateway)."""
    with SimServer(world) as sim, runs_root() as workdir:
        sock = bind_socket()  # bound first: the server's own URL is the OIDC issuer the simulated STS trusts
        settings = Settings.for_data_dir(
            data_dir, kek=KEK, allow_http_endpoints=True, public_url=socket_url(sock),
            **{"anthropic_base_url": f"{sim.url}/anthropic", "openai_base_url": f"{sim.url}/openai/v1",
               "google_base_url": f"{sim.url}/google", "sts_endpoint_url": sim.url,
               "allowed_internal_networks": LOOPBACK_NETWORKS, "run_tools": ("shell",), "run_workdir": workdir,
               **settings_overrides},
        )
        boot = asyncio.run(bootstrap_operator(settings, email="operator@test"))
        keys = world_provider_keys(sim)
        app = create_app(settings)
        if configure is not None:
            configure(app)
        with ServerThread(app, sock=sock) as server, \
                httpx.Client(base_url=server.url + "/api/v1", timeout=30,
                             headers={"authorization": f"Bearer {boot.token}"}) as admin, \
                httpx.Client(base_url=sim.url, timeout=30) as sim_http:
            for provider, key in keys.items():
                r = admin.put(f"/operator/provider-keys/{provider}", json={"api_key": key})
                assert r.status_code == 200, r.text
            yield Stack(sim=sim, url=server.url, settings=settings, operator=boot.token, admin=admin,
                        sim_http=sim_http, provider_keys=keys)
