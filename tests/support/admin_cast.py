"""A real byollm server on a loopback port, and tokens for every role the admin API distinguishes.

One server per test module (starting one costs a migration); each test creates the objects it changes, so
tests stay independent while sharing the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.bootstrap import bootstrap_operator
from byollm.settings import Settings

TEST_KEK = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="  # 32 bytes of 0x02: tests only


@dataclass
class Cast:
    """Who is who on the test server. ``alpha`` is the team under test; ``beta`` another team."""

    url: str
    operator: str
    alpha: str
    beta: str
    admin: str  # an admin of alpha (team-scoped token)
    member: str  # a member of alpha
    other_admin: str  # an admin of beta only
    agent: str  # a named agent of alpha
    admin_uid: str
    member_uid: str
    agent_uid: str

    def client(self, token: str | None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)


def _ok(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code < 300, response.text
    return response.json()  # type: ignore[no-any-return]


def make_cast(url: str, operator_token: str, alpha: str) -> Cast:
    with httpx.Client(base_url=url + "/api/v1", headers={"authorization": f"Bearer {operator_token}"}) as op:
        beta = _ok(op.post("/teams", json={"name": "beta"}))["uid"]
        admin = _ok(op.post(f"/teams/{alpha}/members", json={"email": "alice@alpha.test", "role": "admin"}))
        member = _ok(op.post(f"/teams/{alpha}/members", json={"email": "mallory@alpha.test", "role": "member"}))
        other = _ok(op.post(f"/teams/{beta}/members", json={"email": "bob@beta.test", "role": "admin"}))
        agent = _ok(op.post(f"/teams/{alpha}/agents", json={"name": "reviewer"}))

        def token(team: str, **who: str) -> str:
            return str(_ok(op.post(f"/teams/{team}/tokens", json={"name": "test", **who}))["token"])

        return Cast(
            url=url, operator=operator_token, alpha=alpha, beta=beta,
            admin=token(alpha, user_uid=admin["user_uid"]),
            member=token(alpha, user_uid=member["user_uid"]),
            other_admin=token(beta, user_uid=other["user_uid"]),
            agent=token(alpha, agent_uid=agent["uid"]),
            admin_uid=admin["user_uid"], member_uid=member["user_uid"], agent_uid=agent["uid"],
        )


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.for_data_dir(Path(tmp_path_factory.mktemp("byollm")), kek=TEST_KEK)


@pytest.fixture(scope="module")
def cast(server_settings: Settings) -> Iterator[Cast]:
    boot = asyncio.run(bootstrap_operator(server_settings, email="op@example.test", team_name="alpha"))
    assert boot.team_uid is not None
    with ServerThread(create_app(server_settings)) as server:
        yield make_cast(server.url, boot.token, boot.team_uid)
