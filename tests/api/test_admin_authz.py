"""Every admin endpoint, called by every role: admin, member, another team's admin, an agent, anonymous.

Expected answers: a team's admins manage it; members read its policy and manage their own tokens; a caller
outside the team gets 404 (teams cannot be probed); agent tokens are refused by the control plane; no token
gets 401. Each refused call must also leave the data unchanged, which the follow-up read checks.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from support.admin_cast import Cast

ROLES = ("admin", "member", "other_admin", "agent", "anonymous")


def _token(cast: Cast, role: str) -> str | None:
    return None if role == "anonymous" else str(getattr(cast, role))


def _fresh_member(cast: Cast) -> str:
    with cast.client(cast.operator) as op:
        r = op.post(f"/teams/{cast.alpha}/members", json={"email": f"u{secrets.token_hex(4)}@alpha.test"})
        assert r.status_code == 201, r.text
        return str(r.json()["user_uid"])


def _fresh_agent(cast: Cast) -> str:
    with cast.client(cast.operator) as op:
        r = op.post(f"/teams/{cast.alpha}/agents", json={"name": f"a{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        return str(r.json()["uid"])


def _fresh_token_of(role: str) -> Callable[[Cast], str]:
    """A token uid owned by ``role``'s principal (the admin's, or the member's), issued by the operator."""

    def make(c: Cast) -> str:
        user = c.admin_uid if role == "admin" else c.member_uid
        with c.client(c.operator) as op:
            r = op.post(f"/teams/{c.alpha}/tokens", json={"name": "victim", "user_uid": user})
            assert r.status_code == 201, r.text
            return str(r.json()["details"]["uid"])

    return make


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {team} and {target} are filled in
    expected: dict[str, int]
    body: dict[str, Any] | None = None
    target: Callable[[Cast], str] | None = None
    team: str = "alpha"


def _e(admin: int, member: int, other: int = 404, agent: int = 403, anonymous: int = 401) -> dict[str, int]:
    return {"admin": admin, "member": member, "other_admin": other, "agent": agent, "anonymous": anonymous}


CASES = [
    Case("me", "GET", "/me", _e(200, 200, 200, 200)),
    Case("list teams", "GET", "/teams", _e(200, 200, 200, 200)),
    Case("create team", "POST", "/teams", _e(403, 403, 403, 403), body={"name": "x"}),
    Case("get team", "GET", "/teams/{team}", _e(200, 200)),
    Case("get policy", "GET", "/teams/{team}/policy", _e(200, 200)),
    Case("update policy", "PATCH", "/teams/{team}/policy", _e(200, 403),
         body={"models": {"claude-sonnet-4-6": {"bedrock": True, "direct": True}}}),
    Case("get settings", "GET", "/teams/{team}/settings", _e(200, 200)),
    Case("update settings", "PATCH", "/teams/{team}/settings", _e(200, 403), body={"byok_allowed": True}),
    Case("get bedrock", "GET", "/teams/{team}/bedrock", _e(200, 200)),
    Case("update bedrock", "PATCH", "/teams/{team}/bedrock", _e(200, 403), body={"region": "us-west-2"}),
    Case("list members", "GET", "/teams/{team}/members", _e(200, 403)),
    Case("invite member", "POST", "/teams/{team}/members", _e(201, 403),
         body={"email": "new-{rand}@alpha.test"}),
    Case("set role", "PATCH", "/teams/{team}/members/{target}", _e(200, 403), body={"role": "admin"},
         target=_fresh_member),
    Case("remove member", "DELETE", "/teams/{team}/members/{target}", _e(204, 403), target=_fresh_member),
    Case("list agents", "GET", "/teams/{team}/agents", _e(200, 200)),
    Case("create agent", "POST", "/teams/{team}/agents", _e(201, 403), body={"name": "bot-{rand}"}),
    Case("update agent", "PATCH", "/teams/{team}/agents/{target}", _e(200, 403),
         body={"default_model": "claude-haiku-4-5"}, target=_fresh_agent),
    Case("delete agent", "DELETE", "/teams/{team}/agents/{target}", _e(204, 403), target=_fresh_agent),
    Case("list tokens", "GET", "/teams/{team}/tokens", _e(200, 200)),
    Case("issue own token", "POST", "/teams/{team}/tokens", _e(201, 201), body={"name": "mine"}),
    Case("issue agent token", "POST", "/teams/{team}/tokens", _e(201, 403),
         body={"name": "bot", "agent_uid": "{agent}"}),
    Case("revoke admin's token", "DELETE", "/teams/{team}/tokens/{target}", _e(204, 403),
         target=_fresh_token_of("admin")),
    Case("revoke member's token", "DELETE", "/teams/{team}/tokens/{target}", _e(204, 204),
         target=_fresh_token_of("member")),
    Case("read audit", "GET", "/teams/{team}/audit", _e(200, 403)),
    Case("read request log", "GET", "/teams/{team}/requests", _e(200, 200)),
    Case("read usage", "GET", "/teams/{team}/usage", _e(200, 403)),
    Case("list provider keys", "GET", "/operator/provider-keys", _e(403, 403, 403, 403)),
    Case("set provider key", "PUT", "/operator/provider-keys/openai", _e(403, 403, 403, 403),
         body={"api_key": "sk-should-never-be-stored"}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_admin_endpoint_authorisation(cast: Cast, case: Case, role: str) -> None:
    team = cast.alpha if case.team == "alpha" else cast.beta
    path = case.path.format(team=team, target=case.target(cast) if case.target else "")
    body = case.body
    if body is not None:
        rand = secrets.token_hex(4)
        body = {k: (v.format(rand=rand, agent=cast.agent_uid) if isinstance(v, str) else v) for k, v in body.items()}
    with cast.client(_token(cast, role)) as client:
        response = client.request(case.method, path, json=body)
    assert response.status_code == case.expected[role], (role, case.name, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["remediation"] and error["request_id"].startswith("req_")


def test_refused_changes_leave_policy_unchanged(cast: Cast) -> None:
    with cast.client(cast.admin) as admin:
        before = admin.get(f"/teams/{cast.alpha}/policy").json()
    for role in ("member", "other_admin", "agent", "anonymous"):
        with cast.client(_token(cast, role)) as client:
            r = client.patch(f"/teams/{cast.alpha}/policy", json={"direct_api_disabled": True})
            assert r.status_code in (401, 403, 404)
    with cast.client(cast.admin) as admin:
        assert admin.get(f"/teams/{cast.alpha}/policy").json() == before


def test_operator_creates_teams_and_becomes_their_admin(cast: Cast) -> None:
    with cast.client(cast.operator) as op:
        created = op.post("/teams", json={"name": f"gamma-{secrets.token_hex(3)}"})
        assert created.status_code == 201, created.text
        team = created.json()
        assert team["your_role"] == "admin" and len(team["uid"]) == 22
        assert team["admin_path"] == f"/admin/{team['uid']}/models"
        assert team["uid"] in {t["uid"] for t in op.get("/teams").json()}


def test_only_the_operator_sets_provider_keys_and_never_reads_them_back(cast: Cast) -> None:
    with cast.client(cast.operator) as op:
        r = op.put("/operator/provider-keys/google", json={"api_key": "AIza-test-key-000"})
        assert r.status_code == 200 and r.json()["google"] is True
        listing = op.get("/operator/provider-keys")
        assert "AIza-test-key-000" not in listing.text
        assert op.put("/operator/provider-keys/bedrock", json={"api_key": "x"}).status_code == 400
        audit = op.get(f"/teams/{cast.alpha}/audit").text
    assert "AIza-test-key-000" not in audit


def test_team_scoped_token_cannot_act_in_another_team_of_its_user(cast: Cast) -> None:
    # the operator administers both teams, but a token issued inside beta acts in beta only
    with cast.client(cast.operator) as op:
        me = op.get("/me").json()
        scoped = op.post(f"/teams/{cast.beta}/tokens", json={"name": "beta-only"}).json()["token"]
    with cast.client(scoped) as client:
        assert client.get(f"/teams/{cast.beta}/policy").status_code == 200
        assert client.get(f"/teams/{cast.alpha}/policy").status_code == 404
        assert client.post("/teams", json={"name": "nope"}).status_code == 403
    assert me["is_operator"] is True
