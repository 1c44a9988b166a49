"""The authorisation matrix of every route the app serves, derived from its route table.

``ROUTES`` must name every (method, path) of ``create_app(settings).routes`` (included routers walked), so
a new endpoint fails this test until someone decides who may call it. Each entry says, for every role, what
the answer must be: ``OK`` (allowed: any status below 500 that is not 401, 403, 404 or 429), an exact
refusal (401, 403, 404), or ``SIGNIN`` (a panel page sending the browser to the sign-in form).

Roles: the operator (instance-wide token, admin of the teams it created), an admin and a member of team
alpha (team-scoped tokens), an admin of team beta only, a named agent of alpha (the only non-user principal:
byollm issues no run-scoped API tokens; runs use web-identity tokens, covered in ``test_jwt_attacks``), an
alpha admin's revoked token, an alpha admin's expired token, and nobody. The panel is called with each
role's server-side session: signed in with the role's token where sign-in accepts it, otherwise anonymous;
the revoked and expired roles sign in while their token is good and lose it afterwards.

What the code does about existence (and so what the matrix says): a caller outside a team gets 404 for the
team and everything under it, exactly as for a team that does not exist; agent tokens get 403 from the
control plane whatever the team (so that answer leaks nothing either); a member inside the team gets 403
for admin actions; a run is 404 to everyone but its starter and the team's admins.

One stack serves every case; the cases run in one test, in the table's order (inference before changes,
sign-out last), and every mismatch is collected so one run shows the whole picture.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from byollm.api.app import create_app
from byollm.policy.ids import new_uid
from byollm.store import Store
from security.route_table import walk
from support.runs_stack import member_token, new_agent, running_runs_stack, start_run, team_client, wait_run
from support.stack import Stack

AUTH_CACHE_S = 0.5
OK = "ok"
SIGNIN = "signin"
Outcome = int | str
ROLES = ("operator", "admin", "member", "other_admin", "agent", "revoked", "expired", "anonymous")
BAD_TOKENS = {"revoked": 401, "expired": 401, "anonymous": 401}


def api(operator: Outcome, admin: Outcome, member: Outcome, other: Outcome, agent: Outcome) -> dict[str, Outcome]:
    return {"operator": operator, "admin": admin, "member": member, "other_admin": other, "agent": agent,
            **BAD_TOKENS}


PUBLIC: dict[str, Outcome] = dict.fromkeys(ROLES, OK)
SIGNED_IN = api(OK, OK, OK, OK, OK)
USERS = api(OK, OK, OK, OK, 403)
OPERATOR = api(OK, 403, 403, 403, 403)
TEAM_READ = api(OK, OK, OK, 404, 403)
TEAM_ADMIN = api(OK, OK, 403, 404, 403)
OWN_TOKENS = api(OK, OK, OK, 404, 403)
INFERENCE = api(OK, OK, OK, 404, OK)
RUNS_TEAM = api(OK, OK, OK, 404, OK)
RUN_OF_MEMBER = api(OK, OK, OK, 404, 404)
PANEL_ADMIN: dict[str, Outcome] = {"operator": OK, "admin": OK, "member": 403, "other_admin": 404, "agent": SIGNIN,
                                   "revoked": SIGNIN, "expired": SIGNIN, "anonymous": SIGNIN}
PANEL_HOME: dict[str, Outcome] = {**PUBLIC, "revoked": SIGNIN, "expired": SIGNIN}  # a session whose token died is ended
PANEL_SIGN_IN: dict[str, Outcome] = {"operator": OK, "admin": OK, "member": OK, "other_admin": OK, "agent": 403,
                                     "revoked": 401, "expired": 401, "anonymous": 401}


@dataclass(frozen=True)
class Session:
    """A browser's panel session: the opaque cookie value and the session's CSRF token."""

    sid: str
    csrf: str


@dataclass
class World:
    """The stack, one keep-alive HTTP client for every call, and everything the cases point at."""

    stack: Stack
    http: httpx.Client
    alpha: str
    beta: str
    tokens: dict[str, str | None]
    member_uid: str
    agent_uid: str
    run_uid: str
    admin_uid: str
    sessions: dict[str, Session] = field(default_factory=dict)
    doomed: dict[str, list[Session]] = field(default_factory=dict)

    def fresh_member(self) -> str:
        r = self.stack.admin.post(f"/teams/{self.alpha}/members", json={"email": f"u{secrets.token_hex(4)}@a.test"})
        assert r.status_code == 201, r.text
        return str(r.json()["user_uid"])

    def fresh_agent(self) -> str:
        r = self.stack.admin.post(f"/teams/{self.alpha}/agents", json={"name": f"a{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        return str(r.json()["uid"])

    def fresh_member_token(self) -> str:
        r = self.stack.admin.post(f"/teams/{self.alpha}/tokens", json={"name": "victim", "user_uid": self.member_uid})
        assert r.status_code == 201, r.text
        return str(r.json()["details"]["uid"])


Fill = Callable[[World], dict[str, str]]


def _shared(w: World) -> dict[str, str]:
    return {"team_uid": w.alpha, "run_uid": w.run_uid, "agent_uid": w.agent_uid, "user_uid": w.member_uid,
            "provider": "openai", "name": "panel.css", "token_uid": "none",
            "asset": "init.js", "model_id": "claude-haiku-4-5"}


def _fresh(kind: str) -> Fill:
    def fill(w: World) -> dict[str, str]:
        made = {"user_uid": w.fresh_member, "agent_uid": w.fresh_agent, "token_uid": w.fresh_member_token}[kind]()
        return {**_shared(w), kind: made}
    return fill


@dataclass(frozen=True)
class Case:
    expected: Mapping[str, Outcome]
    body: Any = None  # JSON (API) or form fields (panel); a callable gets the World
    fill: Fill = _shared
    headers: Mapping[str, str] = field(default_factory=dict)
    panel: bool = False


HAIKU = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
JSON_EVENTS = {"accept": "application/json"}

# (method, path) -> Case. Order matters: reads and inference first, then changes, sign-out last.
ROUTES: dict[tuple[str, str], Case] = {
    # operations, public documents
    ("GET", "/healthz"): Case(PUBLIC),
    ("GET", "/metrics"): Case(PUBLIC),
    ("GET", "/.well-known/openid-configuration"): Case(PUBLIC),
    ("GET", "/.well-known/jwks.json"): Case(PUBLIC),
    ("GET", "/api/openapi.json"): Case(PUBLIC),
    ("GET", "/api/docs"): Case(PUBLIC),
    ("GET", "/api/docs/assets/{asset}"): Case(PUBLIC),
    # inference
    ("POST", "/v1/messages"): Case(INFERENCE, HAIKU),
    ("POST", "/v1/messages/count_tokens"): Case(INFERENCE, HAIKU),
    ("POST", "/v1/chat/completions"): Case(INFERENCE, {"model": "gpt-5",
                                                       "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/responses"): Case(INFERENCE, {"model": "gpt-5", "input": "hi"}),
    ("POST", "/v1/responses/input_tokens"): Case(INFERENCE, {"model": "gpt-5", "input": "hi"}),
    ("GET", "/v1/models"): Case(INFERENCE),
    ("GET", "/v1/models/{model_id}"): Case(INFERENCE),
    # admin API: reads
    ("GET", "/api/v1/me"): Case(SIGNED_IN),
    ("GET", "/api/v1/teams"): Case(SIGNED_IN),
    ("GET", "/api/v1/teams/{team_uid}"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/policy"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/settings"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/bedrock"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/agents"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/members"): Case(TEAM_ADMIN),
    ("GET", "/api/v1/teams/{team_uid}/tokens"): Case(OWN_TOKENS),
    ("GET", "/api/v1/teams/{team_uid}/audit"): Case(TEAM_ADMIN),
    ("GET", "/api/v1/teams/{team_uid}/requests"): Case(TEAM_READ),
    ("GET", "/api/v1/teams/{team_uid}/usage"): Case(TEAM_ADMIN),
    ("GET", "/api/v1/operator/provider-keys"): Case(OPERATOR),
    ("GET", "/api/v1/iam/oidc-provider"): Case(USERS),
    ("GET", "/api/v1/teams/{team_uid}/iam/trust-policy"): Case(TEAM_ADMIN),
    ("GET", "/api/v1/teams/{team_uid}/iam/permissions-policy"): Case(TEAM_ADMIN),
    ("GET", "/api/v1/operator/signing-keys"): Case(OPERATOR),
    ("GET", "/api/v1/teams/{team_uid}/doctor"): Case(TEAM_ADMIN),
    ("POST", "/api/v1/teams/{team_uid}/doctor"): Case(TEAM_ADMIN, {}),
    # runs (the run was started by the member)
    ("GET", "/api/v1/teams/{team_uid}/runs"): Case(RUNS_TEAM),
    ("GET", "/api/v1/teams/{team_uid}/runs/{run_uid}"): Case(RUN_OF_MEMBER),
    ("GET", "/api/v1/teams/{team_uid}/runs/{run_uid}/transcript"): Case(RUN_OF_MEMBER),
    ("GET", "/api/v1/teams/{team_uid}/runs/{run_uid}/events"): Case(RUN_OF_MEMBER, headers=JSON_EVENTS),
    ("POST", "/api/v1/teams/{team_uid}/runs/{run_uid}/steer"): Case(RUN_OF_MEMBER, {"message": "m"}),
    ("POST", "/api/v1/teams/{team_uid}/runs/{run_uid}/cancel"): Case(RUN_OF_MEMBER),
    ("POST", "/api/v1/teams/{team_uid}/runs"): Case(RUNS_TEAM, {"prompt": "hi", "model": "gpt-5"}),
    # admin API: changes (benign values, fresh targets where the change removes something)
    ("POST", "/api/v1/teams"): Case(OPERATOR, lambda w: {"name": f"t-{secrets.token_hex(3)}"}),
    ("PATCH", "/api/v1/teams/{team_uid}/policy"): Case(TEAM_ADMIN, {"fallback_order": []}),
    ("PATCH", "/api/v1/teams/{team_uid}/settings"): Case(TEAM_ADMIN, {"byok_allowed": True}),
    ("PATCH", "/api/v1/teams/{team_uid}/bedrock"): Case(TEAM_ADMIN, {"region": "us-east-1"}),
    ("POST", "/api/v1/teams/{team_uid}/members"): Case(
        TEAM_ADMIN, lambda w: {"email": f"n{secrets.token_hex(4)}@a.test"}),
    ("PATCH", "/api/v1/teams/{team_uid}/members/{user_uid}"): Case(TEAM_ADMIN, {"role": "admin"},
                                                                   _fresh("user_uid")),
    ("DELETE", "/api/v1/teams/{team_uid}/members/{user_uid}"): Case(TEAM_ADMIN, fill=_fresh("user_uid")),
    ("POST", "/api/v1/teams/{team_uid}/agents"): Case(TEAM_ADMIN, lambda w: {"name": f"b{secrets.token_hex(4)}"}),
    ("PATCH", "/api/v1/teams/{team_uid}/agents/{agent_uid}"): Case(TEAM_ADMIN, {"tools": []}, _fresh("agent_uid")),
    ("DELETE", "/api/v1/teams/{team_uid}/agents/{agent_uid}"): Case(TEAM_ADMIN, fill=_fresh("agent_uid")),
    ("POST", "/api/v1/teams/{team_uid}/tokens"): Case(OWN_TOKENS, {"name": "mine"}),
    ("DELETE", "/api/v1/teams/{team_uid}/tokens/{token_uid}"): Case(OWN_TOKENS, fill=_fresh("token_uid")),
    ("PUT", "/api/v1/operator/provider-keys/{provider}"): Case(
        OPERATOR, lambda w: {"api_key": w.stack.provider_keys["openai"]}),
    ("POST", "/api/v1/operator/signing-keys/rotate"): Case(OPERATOR, {"publish_delay_seconds": 3600}),
    # the panel (server-side sessions)
    ("GET", "/admin/_static/{name}"): Case(PUBLIC, panel=True),
    ("GET", "/admin"): Case(PANEL_HOME, panel=True),
    ("GET", "/admin/{team_uid}"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/models"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/agents"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/members"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/usage"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/requests"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/runs"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/runs/{run_uid}"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/runs/{run_uid}/events"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/runs/{run_uid}/facts"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/audit"): Case(PANEL_ADMIN, panel=True),
    ("GET", "/admin/{team_uid}/validate"): Case(PANEL_ADMIN, panel=True),
    ("POST", "/admin/{team_uid}/validate"): Case(PANEL_ADMIN, {}, panel=True),
    ("POST", "/admin/{team_uid}/models/bedrock"): Case(
        PANEL_ADMIN, lambda w: {"region": "us-east-1", "endpoint_url": w.stack.sim.url}, panel=True),
    ("POST", "/admin/{team_uid}/models/routing"): Case(PANEL_ADMIN, lambda w: _routing_form(), panel=True),
    ("POST", "/admin/{team_uid}/models/fallbacks"): Case(
        PANEL_ADMIN, {"credentialless_direct_allowed": "on"}, panel=True),
    ("POST", "/admin/{team_uid}/models/names"): Case(
        PANEL_ADMIN, {"aliases": "claude-opus-* => claude-sonnet-4-6", "claude_family_mapping": "on",
                      "bedrock_model_discovery": "on"}, panel=True),
    ("POST", "/admin/{team_uid}/agents"): Case(
        PANEL_ADMIN, lambda w: {"name": f"p{secrets.token_hex(4)}", "role_mode": "team"}, panel=True),
    ("POST", "/admin/{team_uid}/agents/{agent_uid}"): Case(
        PANEL_ADMIN, lambda w: {"name": f"q{secrets.token_hex(4)}", "role_mode": "team"}, _fresh("agent_uid"),
        panel=True),
    ("POST", "/admin/{team_uid}/agents/{agent_uid}/delete"): Case(
        PANEL_ADMIN, {"confirm": "yes"}, _fresh("agent_uid"), panel=True),
    ("POST", "/admin/{team_uid}/members"): Case(
        PANEL_ADMIN, lambda w: {"email": f"r{secrets.token_hex(4)}@a.test", "role": "member"}, panel=True),
    ("POST", "/admin/{team_uid}/members/{user_uid}/role"): Case(PANEL_ADMIN, {"role": "admin"}, _fresh("user_uid"),
                                                                panel=True),
    ("POST", "/admin/{team_uid}/members/{user_uid}/remove"): Case(
        PANEL_ADMIN, {"confirm": "yes"}, _fresh("user_uid"), panel=True),
    ("POST", "/admin/{team_uid}/tokens"): Case(PANEL_ADMIN, {"name": "panel", "subject": "self:"}, panel=True),
    ("POST", "/admin/{team_uid}/tokens/{token_uid}/revoke"): Case(
        PANEL_ADMIN, {"confirm": "yes"}, _fresh("token_uid"), panel=True),
    ("POST", "/admin/{team_uid}/usage/allowances"): Case(
        PANEL_ADMIN, {"monthly_ai_credits": "10", "platform_credits": "10", "compute_credits": "10"}, panel=True),
    ("POST", "/admin/{team_uid}/runs"): Case(PANEL_ADMIN, {"prompt": "hi", "model": "gpt-5"}, panel=True),
    ("POST", "/admin/{team_uid}/runs/{run_uid}/steer"): Case(PANEL_ADMIN, {"message": "m"}, panel=True),
    ("POST", "/admin/{team_uid}/runs/{run_uid}/cancel"): Case(PANEL_ADMIN, {}, panel=True),
    ("POST", "/admin/sign-in"): Case(PANEL_SIGN_IN, panel=True),
    # without a session (no one signed in: anonymous, and an agent, whose sign-in was refused) there is no
    # CSRF token a sign-out form could carry, so it is refused like any other form
    ("POST", "/admin/sign-out"): Case({**PUBLIC, "anonymous": 403, "agent": 403}, {}, panel=True),
}


def _routing_form() -> dict[str, Any]:
    models = ("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5", "gemini-2.5-flash")
    form: dict[str, Any] = {"model": list(models), "fallback_order": ""}
    for m in models:
        form[f"direct.{m}"] = "on"
    return form


# --- the route table ------------------------------------------------------------------------------------------


def test_every_route_has_an_entry_in_the_matrix(world: World) -> None:
    served = set(walk(list(create_app(world.stack.settings).routes)))
    assert served, "the route table walk found nothing"
    missing = sorted(served - set(ROUTES))
    stale = sorted(set(ROUTES) - served)
    assert missing == [], f"routes without an authorisation expectation: {missing}"
    assert stale == [], f"expectations for routes that no longer exist: {stale}"


# --- the stack and the cast -----------------------------------------------------------------------------------


def _issue(stack: Stack, team: str, user_uid: str) -> tuple[str, str]:
    r = stack.admin.post(f"/teams/{team}/tokens", json={"name": "t", "user_uid": user_uid})
    assert r.status_code == 201, r.text
    return str(r.json()["token"]), str(r.json()["details"]["uid"])


def _expire(stack: Stack, token_uids: list[str]) -> None:
    async def run() -> None:
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        async with Store.from_settings(stack.settings) as store, store.engine.begin() as conn:
            for uid in token_uids:
                await conn.execute(text("UPDATE api_tokens SET expires_at = :t WHERE uid = :u"), {"t": past, "u": uid})

    asyncio.run(run())


def _revoke(stack: Stack, team: str, token_uid: str) -> None:
    assert stack.admin.delete(f"/teams/{team}/tokens/{token_uid}").status_code == 204


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _browse(http: httpx.Client, method: str, path: str, sid: str | None = None,
            form: Mapping[str, Any] | None = None) -> httpx.Response:
    """One browser request carrying exactly the session cookie given (the shared client keeps no cookies)."""
    http.cookies.clear()
    headers = {"cookie": sid if "=" in sid else f"byollm_panel={sid}"} if sid else {}
    response = http.request(method, path, data=form, headers=headers)
    http.cookies.clear()
    return response


def _csrf(response: httpx.Response) -> str:
    match = _CSRF.search(response.text)
    assert match, response.text[:300]
    return match.group(1)


def _sign_in(http: httpx.Client, token: str | None) -> Session:
    """A fresh browser's session, signed in with ``token`` when sign-in accepts it (agents' tokens are
    refused: their session stays anonymous)."""
    first = _browse(http, "GET", "/admin")
    # before sign-in there is no session, only the sign-in form's cookie (its CSRF token is bound to it)
    anonymous = Session(f"byollm_panel_signin={first.cookies['byollm_panel_signin']}", _csrf(first))
    if token is None:
        return anonymous
    signed = _browse(http, "POST", "/admin/sign-in", anonymous.sid, {"csrf_token": anonymous.csrf, "token": token})
    if signed.status_code != 303:
        return anonymous
    sid = signed.cookies["byollm_panel"]
    return Session(sid, _csrf(_browse(http, "GET", "/admin", sid)))


def _doomed_sessions(w: World, fate: str, count: int) -> list[Session]:
    """Sessions signed in with a fresh alpha-admin token that is then revoked or expired: each browser still
    holds a live cookie and a valid CSRF token, only the token behind the session has died. (One token backs
    them all: every session re-authenticates its own copy on each request.)"""
    token, token_uid = _issue(w.stack, w.alpha, w.admin_uid)
    sessions = [_sign_in(w.http, token) for _ in range(count)]
    if fate == "revoked":
        _revoke(w.stack, w.alpha, token_uid)
    else:
        _expire(w.stack, [token_uid])
    return sessions


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # a short auth cache: an expiry written to the database takes effect once it lapses (revocations clear it
    # at once); no failed-attempt lock-out: this test presents bad tokens hundreds of times on purpose; and
    # every browser here signs in from loopback, so no per-address cap on panel sessions either
    with running_runs_stack(Path(tmp_path_factory.mktemp("authz")), auth_cache_seconds=AUTH_CACHE_S,
                            failed_token_limit=1_000_000, panel_sessions_per_address=10_000) as stack:
        # the matrix sends inference without AWS credentials: the teams serve such requests direct (issue 16)
        alpha = stack.new_team(platform_credits=100_000, compute_credits=1_000_000, credentialless_direct_allowed=True)
        beta = stack.new_team(credentialless_direct_allowed=True)
        member = team_client(stack, alpha.token, alpha.uid)
        member_uid = str(httpx.get(f"{stack.url}/api/v1/me", headers={"authorization": f"Bearer {alpha.token}"},
                                   timeout=10).json()["principal_uid"])
        admin_uid, admin = member_token(stack, alpha.uid, role="admin")
        _, other_admin = member_token(stack, beta.uid, role="admin")
        agent_uid, agent = new_agent(stack, alpha.uid)
        revoked, revoked_uid = _issue(stack, alpha.uid, admin_uid)
        expired, expired_uid = _issue(stack, alpha.uid, admin_uid)
        run = start_run(member, prompt="hello", model="gpt-5")
        wait_run(member, run["uid"])
        member.close()
        tokens: dict[str, str | None] = {"operator": stack.operator, "admin": admin, "member": alpha.token,
                                         "other_admin": other_admin, "agent": agent, "revoked": revoked,
                                         "expired": expired, "anonymous": None}
        http = httpx.Client(base_url=stack.url, timeout=60, follow_redirects=False)
        w = World(stack=stack, http=http, alpha=alpha.uid, beta=beta.uid, tokens=tokens, member_uid=member_uid,
                  agent_uid=agent_uid, run_uid=run["uid"], admin_uid=admin_uid)
        # sessions of the live roles; the revoked and expired roles get a fresh doomed session per call
        w.sessions = {role: _sign_in(http, token) for role, token in tokens.items()
                      if role not in ("revoked", "expired")}
        panel_cases = sum(1 for c in ROUTES.values() if c.panel)
        w.doomed = {fate: _doomed_sessions(w, fate, panel_cases) for fate in ("revoked", "expired")}
        _revoke(stack, alpha.uid, revoked_uid)
        _expire(stack, [expired_uid])
        time.sleep(AUTH_CACHE_S + 0.1)  # no cached caller of an expired token survives
        try:
            yield w
        finally:
            http.close()


# --- calling a case -------------------------------------------------------------------------------------------


def _outcome(response: httpx.Response, panel: bool) -> Outcome:
    if panel and response.status_code == 303 and response.headers.get("location") == "/admin":
        # sign-in and sign-out succeed by sending the browser home; any other page doing so wants a sign-in
        return OK if response.request.url.path in ("/admin/sign-in", "/admin/sign-out") else SIGNIN
    status = response.status_code
    if status in (401, 403, 404, 429) or status >= 500:
        return status
    return OK


def _call_api(w: World, method: str, path: str, case: Case, role: str, body: Any) -> httpx.Response:
    token = w.tokens[role]
    headers = {"x-byollm-team": w.alpha, **case.headers}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    w.http.cookies.clear()
    return w.http.request(method, path, headers=headers, json=body)


def _call_panel(w: World, method: str, path: str, case: Case, role: str, body: Any) -> httpx.Response:
    if path == "/admin/sign-in":  # a fresh browser signs in with this role's token
        first = _browse(w.http, "GET", "/admin")
        return _browse(w.http, "POST", path, f"byollm_panel_signin={first.cookies['byollm_panel_signin']}",
                       {"csrf_token": _csrf(first), "token": w.tokens[role] or ""})
    session = w.doomed[role].pop() if role in w.doomed else w.sessions[role]
    form = {"csrf_token": session.csrf, **(body or {})} if method == "POST" else None
    return _browse(w.http, method, path, session.sid, form)  # the run-events stream ends: the run has ended


def test_authorisation_matrix(world: World) -> None:
    mismatches: list[tuple[str, str, str, Outcome, Outcome, str]] = []
    calls = 0
    for (method, template), case in ROUTES.items():
        values: dict[str, str] | None = None
        for role in ROLES:
            # a fresh target (for changes that consume one) only after a call that was let through
            values = values or case.fill(world)
            path = template.format(**values)
            body = case.body(world) if callable(case.body) else case.body
            call = _call_panel if case.panel else _call_api
            response = call(world, method, path, case, role, body)
            calls += 1
            got, expected = _outcome(response, case.panel), case.expected[role]
            if got == OK:
                values = None
            if got != expected:
                mismatches.append((method, template, role, expected, got, response.text[:200]))
    assert mismatches == [], "\n".join(map(str, mismatches))
    assert calls == len(ROUTES) * len(ROLES)


def test_outsiders_cannot_tell_a_foreign_team_from_a_missing_one(world: World) -> None:
    """Every team-scoped GET answers another team's admin exactly as it answers for a UID nobody has."""
    outsider = _sign_in(world.http, world.tokens["other_admin"])  # sign-out ended the matrix's session
    for (method, template), case in ROUTES.items():
        if method != "GET" or "{team_uid}" not in template:
            continue
        answers: list[tuple[int, object]] = []
        for team in (world.alpha, new_uid()):
            values = {**_shared(world), "team_uid": team}
            path = template.format(**values)
            if case.panel:
                r = _browse(world.http, "GET", path, outsider.sid)
                answers.append((r.status_code, "no such team" in r.text))
            else:
                r = _call_api(world, method, path, case, "other_admin", None)
                error = r.json().get("error", {})
                answers.append((r.status_code, error.get("code") if isinstance(error, dict) else error))
        assert answers[0] == answers[1], (template, answers)
        assert answers[0][0] == 404, (template, answers)
