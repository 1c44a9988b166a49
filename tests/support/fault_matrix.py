"""The fault matrix: every ``ErrorClass`` x {plain, stream} x {interactive, cloud run}, injected for real.

Why a matrix generated from the enum: the taxonomy promises that every failure a user can hit has one class,
one status, one remediation and a fixed failover decision, whichever door the request came through. A class
added later without a cell here shows up as a failing "no cell" entry, so the promise cannot silently
lose coverage.

Injection is only ever through the simulator (``/_sim/faults``, world changes: trust policies, permission
policies, quotas, model access, deleted profiles, expired credentials) or through the request itself
(headers, body, token, client address); byollm is never patched. Each cell gets its own team, created on
first use and shared by the plain and stream cells of the same class and context; every world change a
cell makes is undone after it.

Contexts:

- interactive: a member's token with delegated AWS session credentials (``Stack.delegated_headers``), or
  BYOK/operator keys on direct routes;
- cloud run: a run created through the runs API, executing on the embedded worker with web-identity
  credentials (byollm's OIDC token exchanged with the simulated STS). A run's model calls are made with
  ``Gateway.complete`` (never streaming), so every cloud-run stream cell is ``n/a``.

Outcome of a cell (its table text): ``fails over -> <route>`` (a fallback served it; with nothing left the
same injection ended in ``no_fallback_available`` naming the class and its remediation), ``fails: <code>
<status>`` (the class itself reached the caller, or the run's final state), or ``n/a`` with a reason.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import orjson

from byollm.errors import ErrorClass
from byollm.policy.ids import new_uid
from support.oidc_stack import make_role, running_oidc_stack
from support.runs_stack import RUN_SETTINGS, RunTeam, run_team, start_run, wait_run
from support.stack import ACCOUNT, Stack, Team

__all__ = [
    "MATRIX_SETTINGS",
    "Cell",
    "CellResult",
    "Context",
    "Harness",
    "Mode",
    "NotApplicable",
    "format_table",
    "matrix_cells",
    "matrix_stack",
    "run_cell",
    "run_matrix",
]

OTHER_ACCOUNT = "444455556666"  # in the default world: no OIDC provider for byollm's issuer
OPUS = "claude-opus-4-7"
OPUS_BEDROCK_ID = "anthropic.claude-opus-4-7-v1:0"
OPUS_SYSTEM_PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{OPUS_BEDROCK_ID}"
BOTH = {"bedrock": True, "direct": True}
BEDROCK_ONLY = {"bedrock": True, "direct": False}
DIRECT_ONLY = {"bedrock": False, "direct": True}
HAIKU_ONLY_POLICY: dict[str, Any] = {  # a role that may invoke Haiku only (as the world's byollm-agent role)
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        "Resource": ["arn:aws:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
                     f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/*.anthropic.claude-haiku-4-5-20251001-v1:0"],
    }],
}

MATRIX_SETTINGS: dict[str, Any] = {
    **RUN_SETTINGS,
    "max_body_bytes": 256 * 1024,  # payload_too_large without shipping megabytes
    "failed_token_limit": 3,  # too_many_attempts after a few bad tokens (each such cell has its own address)
    "run_tools": (),  # the operator enabled no tools: asking for the shell is tool_not_enabled
}


class Context(StrEnum):
    INTERACTIVE = "interactive"
    CLOUD_RUN = "cloud run"


class Mode(StrEnum):
    PLAIN = "plain"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class NotApplicable:
    reason: str


RUN_STREAM_NA = NotApplicable("a run's model calls are never streamed (RunExecution._model_call uses"
                              " Gateway.complete)")


class CellFailure(AssertionError):
    """A cell's expectation did not hold; the message says which."""


Check = Callable[["Harness", Mode], str]


@dataclass(frozen=True, slots=True)
class ClassSpec:
    interactive: Check | NotApplicable
    cloud_run: Check | NotApplicable  # the plain cell; a run's stream cell is always RUN_STREAM_NA


@dataclass(frozen=True, slots=True)
class Cell:
    code: str
    context: Context
    mode: Mode
    check: Check | None
    na_reason: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.code, self.context.value, self.mode.value

    @property
    def id(self) -> str:
        return f"{self.code}-{self.context.value.replace(' ', '_')}-{self.mode.value}"


@dataclass(frozen=True, slots=True)
class CellResult:
    cell: Cell
    outcome: str  # "fails over -> route", "fails: code status", "n/a" or "error"
    passed: bool
    problem: str = ""
    seconds: float = 0.0


# --- requests and replies ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the raw SSE text of a streamed answer

    def json_error(self) -> Mapping[str, Any]:
        if not isinstance(self.body, Mapping) or not isinstance(self.body.get("error"), Mapping):
            raise CellFailure(f"expected a JSON error body, got {str(self.body)[:300]}")
        error: Mapping[str, Any] = self.body["error"]
        return error


def _body(shape: str, model: str, mode: Mode, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 64,
                            "messages": [{"role": "user", "content": "fault matrix probe"}]}
    if mode is Mode.STREAM:
        body["stream"] = True
    body.update(extra or {})
    return body


def _send(client: httpx.Client, shape: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
    path = "/v1/messages" if shape == "anthropic" else "/v1/chat/completions"
    with client.stream("POST", path, content=orjson.dumps(body),
                       headers={"content-type": "application/json", **headers}) as response:
        raw = response.read()
    kind = response.headers.get("content-type", "")
    parsed: Any = raw.decode() if kind.startswith("text/event-stream") else (orjson.loads(raw) if raw else None)
    return Reply(response.status_code, dict(response.headers), parsed)


# --- the harness ------------------------------------------------------------------------------------------


@dataclass
class Harness:
    """One stack shared by every cell; teams per (class, context); undo steps per cell."""

    stack: Stack
    teams: dict[tuple[str, str], Any] = field(default_factory=dict)
    undo: list[Callable[[], None]] = field(default_factory=list)
    _addresses: Iterator[int] = field(default_factory=lambda: iter(range(10, 250)))

    # --- teams and clients ------------------------------------------------------------------------------

    def team(self, key: str, models: Mapping[str, Any], **settings: Any) -> Team:
        """The interactive team of cell ``key`` (created once, shared by its plain and stream cells)."""
        team = self.teams.get((key, "interactive"))
        if team is None:
            team = self.teams[(key, "interactive")] = self.stack.new_team(dict(models), **settings)
        assert isinstance(team, Team)
        return team

    def run_team(self, key: str, models: Mapping[str, Any], *, role: bool = True,
                 role_policy: dict[str, Any] | None = None, **settings: Any) -> RunTeam:
        """The cloud-run team of cell ``key``; with ``role``, a fresh role trusting byollm for this team."""
        rt = self.teams.get((key, "cloud run"))
        if rt is None:
            rt = run_team(self.stack, models=dict(models), **settings)
            if role:
                arn = make_role(self.stack, subjects=[f"scoped_principal:{rt.uid}/*"], policy=role_policy)
                rt.team.bedrock(role_arn=arn)
            self.teams[(key, "cloud run")] = rt
        assert isinstance(rt, RunTeam)
        return rt

    def client(self, team: Team, headers: Mapping[str, str] | None = None, *, token: str | None = None,
               own_address: bool = False) -> httpx.Client:
        """A gateway client; ``own_address`` binds a fresh loopback source address, so the failed-token
        limiter (per client address) counts this cell's bad tokens apart from everyone else's."""
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{next(self._addresses)}") if own_address else None
        return httpx.Client(base_url=self.stack.url, timeout=30, transport=transport, headers={
            "authorization": f"Bearer {token if token is not None else team.token}", **(headers or {})})

    def role_arn(self, rt: RunTeam) -> str:
        r = self.stack.admin.get(f"/teams/{rt.uid}/bedrock")
        expect(r.status_code == 200 and bool(r.json().get("role_arn")), f"no role for team {rt.uid}: {r.text}")
        return str(r.json()["role_arn"])

    def other_team_uid(self, team: Team) -> str:
        """A team that exists but ``team``'s token cannot see."""
        for key, other in self.teams.items():
            if key[1] == "interactive" and other is not team:
                return str(other.uid)
        return str(self.team("bystander", {OPUS: BOTH}).uid)

    # --- the simulator ------------------------------------------------------------------------------------

    def fault(self, **rule: Any) -> None:
        r = self.stack.sim_http.post("/_sim/faults", json=rule)
        if r.status_code != 200:
            raise CellFailure(f"the simulator refused fault {rule}: {r.text}")

    def sim(self, method: str, path: str, body: Any = None, *, undo: tuple[str, str, Any] | None = None) -> Any:
        r = self.stack.sim_http.request(method, path, json=body)
        if r.status_code != 200:
            raise CellFailure(f"simulator {method} {path}: {r.status_code} {r.text}")
        if undo is not None:
            u_method, u_path, u_body = undo

            def restore() -> None:
                self.stack.sim_http.request(u_method, u_path, json=u_body)

            self.undo.append(restore)
        return r.json() if r.content else None

    def revoke_model_access(self, model_id: str) -> None:
        self.sim("DELETE", f"/_sim/accounts/{ACCOUNT}/model-access/{model_id}",
                 undo=("PUT", f"/_sim/accounts/{ACCOUNT}/model-access/{model_id}", None))

    def exhaust_quota(self, model_id: str) -> None:
        self.sim("PUT", f"/_sim/accounts/{ACCOUNT}/quotas/{model_id}", {"requests_per_minute": 0},
                 undo=("PUT", f"/_sim/accounts/{ACCOUNT}/quotas/{model_id}",
                       {"requests_per_minute": 100_000, "tokens_per_minute": 100_000_000}))

    def deleted_application_profile(self) -> str:
        """An application inference profile that existed (so the admin API accepts it) and was deleted."""
        profile = f"fmx{secrets.token_hex(4)}"
        arn = str(self.sim("PUT", f"/_sim/accounts/{ACCOUNT}/application-profiles/{profile}",
                           {"region": "us-east-1", "source": OPUS_SYSTEM_PROFILE})["arn"])
        self.sim("DELETE", f"/_sim/accounts/{ACCOUNT}/application-profiles/{profile}")
        return arn

    def cleanup(self) -> None:
        self.stack.clear_faults()
        while self.undo:
            self.undo.pop()()

    # --- the request log ----------------------------------------------------------------------------------

    def logged(self, team_uid: str, match: Callable[[Mapping[str, Any]], bool], timeout: float = 5.0
               ) -> Mapping[str, Any]:
        """The team's request-log row ``match`` picks (the log is written in batches, off the hot path)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.stack.admin.get(f"/teams/{team_uid}/requests", params={"limit": 100})
            if r.status_code != 200:
                raise CellFailure(f"request log: {r.status_code} {r.text}")
            rows = [row for row in r.json() if match(row)]
            if rows:
                return dict(rows[0])
            if time.monotonic() > deadline:
                raise CellFailure(f"no matching request-log row for team {team_uid} after {timeout} s")
            time.sleep(0.05)


# --- expectations -------------------------------------------------------------------------------------------


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CellFailure(message)


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 503: "overloaded_error"}


def expect_class(reply: Reply, error_class: ErrorClass, shape: str, *,
                 retryable: bool | None = None) -> Mapping[str, Any]:
    """The reply is ``error_class`` in ``shape``: status, code, remediation, type, retry header (``retryable``
    overrides the class's own flag, for a ``no_fallback_available`` whose attempts all failed for a passing
    reason)."""
    where = f"{shape} shape"
    expect(reply.status == error_class.status,
           f"{where}: status {reply.status}, expected {error_class.status} ({str(reply.body)[:300]})")
    error = reply.json_error()
    byollm = error.get("byollm")
    expect(isinstance(byollm, Mapping), f"{where}: no byollm details in {error}")
    assert isinstance(byollm, Mapping)
    expect(byollm.get("code") == error_class.code, f"{where}: code {byollm.get('code')}, expected {error_class.code}")
    expect(byollm.get("remediation") == error_class.remediation, f"{where}: remediation {byollm.get('remediation')!r}")
    expect(error_class.remediation in str(error.get("message")), f"{where}: message lacks the remediation")
    expected_type = _ANTHROPIC_TYPES.get(error_class.status, "api_error")
    expect(error.get("type") == expected_type, f"{where}: type {error.get('type')}, expected {expected_type}")
    if shape == "openai":
        expect(error.get("code") == error_class.code, f"{where}: error.code {error.get('code')}")
    expect(reply.headers.get("x-byollm-error-code") == error_class.code,
           f"{where}: x-byollm-error-code {reply.headers.get('x-byollm-error-code')}")
    retry = reply.headers.get("x-should-retry")
    if retryable if retryable is not None else error_class.retryable:
        expect(retry == "true", f"{where}: x-should-retry {retry!r}, expected 'true' for a retryable failure")
    else:
        expect(retry == "false", f"{where}: x-should-retry {retry!r}, expected 'false' for a non-retryable class")
    return byollm


def expect_served(reply: Reply, shape: str, route_prefix: str) -> str:
    """A successful answer from a fallback route starting with ``route_prefix``; its route."""
    expect(reply.status == 200, f"{shape}: status {reply.status}, expected 200 from a fallback ({reply.body})")
    route = reply.headers.get("x-byollm-route", "")
    expect(route.startswith(route_prefix), f"{shape}: served by {route!r}, expected {route_prefix}...")
    expect(int(reply.headers.get("x-byollm-fallbacks", "0")) >= 1,
           f"{shape}: x-byollm-fallbacks {reply.headers.get('x-byollm-fallbacks')}, expected >= 1")
    if isinstance(reply.body, str):  # a stream: it must have run to its end, with no error event
        error_mark, done = ("event: error", "event: message_stop") if shape == "anthropic" else (
            'data: {"error"', "data: [DONE]")
        expect(error_mark not in reply.body, f"{shape}: the stream carried an error: {reply.body[-300:]}")
        expect(done in reply.body, f"{shape}: the stream did not finish ({reply.body[-300:]})")
    return route


def expect_no_fallback(reply: Reply, error_class: ErrorClass, shape: str, detail: str = "") -> None:
    """``no_fallback_available`` whose attempts name ``error_class`` with its remediation (and ``detail``)."""
    byollm = expect_class(reply, ErrorClass.NO_FALLBACK_AVAILABLE, shape, retryable=error_class.retryable)
    attempts = (byollm.get("context") or {}).get("attempts") or []
    named = [a for a in attempts if a.get("code") == error_class.code]
    expect(bool(named), f"{shape}: no attempt names {error_class.code}: {attempts}")
    expect(named[0].get("remediation") == error_class.remediation, f"{shape}: attempt lacks the remediation")
    shown = named[0].get("detail")
    expect(detail in str(shown), f"{shape}: attempt detail {shown!r} lacks {detail!r}")


# --- generic interactive checks -----------------------------------------------------------------------------


def interactive_failover(
    h: Harness, mode: Mode, team: Team, error_class: ErrorClass, *, with_fallback: Mapping[str, Any],
    alone: Mapping[str, Any], route_prefix: str, headers: Mapping[str, str] | None = None, model: str = OPUS,
    extra: Mapping[str, Any] | None = None, shapes: Sequence[str] = ("anthropic", "openai"),
    alone_settings: Mapping[str, Any] | None = None, detail: str = "", alone_is_the_class: bool = False,
) -> str:
    """With a fallback the request is served by it (attempts logged with the class); alone it ends in
    ``no_fallback_available`` naming the class (or, ``alone_is_the_class``, in the class itself: a request
    no route could take is the caller's to change), in every shape given."""
    team.policy(**with_fallback)
    route = ""
    with h.client(team, headers) as client:
        for shape in shapes:
            reply = _send(client, shape, _body(shape, model, mode, extra), {})
            route = expect_served(reply, shape, route_prefix)
            rid = reply.headers.get("x-request-id", "")
            row = h.logged(team.uid, lambda r, rid=rid: r["request_id"] == rid)  # type: ignore[misc]
            codes = [a.get("error_code") for a in row["attempts"]]
            expect(codes[0] == error_class.code and codes[-1] is None,
                   f"{shape}: request-log attempts {codes}, expected [{error_class.code}, ..., None]")
            expect(row["route"] == route, f"{shape}: request log route {row['route']} != header {route}")
        team.policy(**alone)
        if alone_settings:
            team.settings(**alone_settings)
        for shape in shapes:
            reply = _send(client, shape, _body(shape, model, mode, extra), {})
            if alone_is_the_class:
                expect_class(reply, error_class, shape)
            else:
                expect_no_fallback(reply, error_class, shape, detail)
    return f"fails over → {route}"


def interactive_fails(
    h: Harness, mode: Mode, team: Team, error_class: ErrorClass, *, headers: Mapping[str, str] | None = None,
    model: str = OPUS, extra: Mapping[str, Any] | None = None, token: str | None = None,
    own_address: bool = False, shapes: Sequence[str] = ("anthropic", "openai"),
) -> str:
    """The class reaches the caller as itself (no failover), in the Anthropic and OpenAI shapes."""
    with h.client(team, headers, token=token, own_address=own_address) as client:
        for shape in shapes:
            expect_class(_send(client, shape, _body(shape, model, mode, extra), {}), error_class, shape)
    return f"fails: {error_class.code} {error_class.status}"


# --- generic cloud-run checks --------------------------------------------------------------------------------


def _events(rt: RunTeam, run_uid: str) -> list[dict[str, Any]]:
    r = rt.member.get(f"/runs/{run_uid}/events", headers={"accept": "application/json"})
    expect(r.status_code == 200, f"run events: {r.status_code} {r.text}")
    return list(r.json())


def _run(rt: RunTeam, model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = start_run(rt.member, prompt="fault matrix probe", model=model, max_turns=1)
    done = wait_run(rt.member, run["uid"], timeout=30)
    return done, _events(rt, run["uid"])


def run_fails(rt: RunTeam, error_class: ErrorClass, *, model: str = OPUS) -> tuple[str, list[dict[str, Any]]]:
    """Start a run that must fail with ``error_class``: final state, code and remediation in view and events."""
    done, events = _run(rt, model)
    expect(done["state"] == "failed" and done["error_code"] == error_class.code,
           f"run ended {done['state']} with {done['error_code']}, expected failed with {error_class.code}"
           f" (events: {[e['kind'] for e in events]})")
    expect(done.get("remediation") == error_class.remediation, f"run view remediation {done.get('remediation')!r}")
    final = [e["data"] for e in events if e["kind"] == "state" and e["data"].get("state") == "failed"]
    expect(bool(final) and final[-1].get("code") == error_class.code
           and final[-1].get("remediation") == error_class.remediation,
           f"the run's final state event lacks {error_class.code} and its remediation: {final}")
    return str(done["uid"]), events


def run_failover(h: Harness, rt: RunTeam, error_class: ErrorClass, *, with_fallback: Mapping[str, Any],
                 alone: Mapping[str, Any], route_prefix: str, web_identity: bool = False) -> str:
    """A run served by the fallback (its model call and request-log attempts say so), then, alone, a run
    that fails with ``no_fallback_available`` whose route failures name the class and remediation."""
    rt.team.policy(**with_fallback)
    done, events = _run(rt, OPUS)
    expect(done["state"] == "succeeded", f"run ended {done['state']} ({done['error_code']}), expected a fallback"
           f" to serve it (events: {[(e['kind'], e['data'].get('code')) for e in events]})")
    call = next((e["data"] for e in events if e["kind"] == "model_call"), None)
    expect(call is not None, "no model_call event")
    assert call is not None
    route = str(call["route"])
    expect(route.startswith(route_prefix) and call["fallbacks"] >= 1,
           f"model_call route {route} fallbacks {call['fallbacks']}, expected {route_prefix}... after a fallback")
    row = h.logged(rt.uid, lambda r: r.get("run_uid") == done["uid"])
    codes = [a.get("error_code") for a in row["attempts"]]
    expect(codes[0] == error_class.code and codes[-1] is None, f"request-log attempts {codes}")
    if web_identity:
        failures = [e["data"] for e in events if e["kind"] == "web_identity_failure"]
        expect(len(failures) == 1 and failures[0]["code"] == error_class.code
               and failures[0]["remediation"] == error_class.remediation,
               f"web_identity_failure events {failures}, expected one {error_class.code} with its remediation")
    rt.team.policy(**alone)
    _, events = run_fails(rt, ErrorClass.NO_FALLBACK_AVAILABLE)
    failures = [e["data"] for e in events if e["kind"] == "route_failure"]
    expect(any(f["code"] == error_class.code and f["remediation"] == error_class.remediation for f in failures),
           f"route_failure events {failures}, expected {error_class.code} with its remediation")
    return f"fails over → {route}"


# --- the cells, one spec per class ----------------------------------------------------------------------------

WITH_DIRECT = {"models": {OPUS: BOTH}, "fallback_order": []}
BEDROCK_ALONE = {"models": {OPUS: BEDROCK_ONLY}, "fallback_order": []}
DIRECT_WITH_GPT = {"models": {OPUS: DIRECT_ONLY, "gpt-5": DIRECT_ONLY}, "fallback_order": ["gpt-5"]}
DIRECT_ALONE = {"models": {OPUS: DIRECT_ONLY}, "fallback_order": []}
E = ErrorClass


def _session(h: Harness) -> dict[str, str]:
    return h.stack.delegated_headers()


def _i_local_expired(h: Harness, mode: Mode) -> str:
    team = h.team("local_credentials_expired", {OPUS: BOTH})  # a direct fallback exists: it must not be used
    headers = _session(h)
    h.sim("POST", f"/_sim/credentials/{headers['x-byollm-aws-access-key-id']}/expire")  # AWS now says expired
    return interactive_fails(h, mode, team, E.LOCAL_CREDENTIALS_EXPIRED, headers=headers)


def _i_local_missing(h: Harness, mode: Mode) -> str:
    """No AWS session at all, for a model the team routes through Bedrock: refused, never sent direct."""
    team = h.team("local_credentials_missing", {OPUS: BOTH})  # a direct route exists: it must not be used
    return interactive_fails(h, mode, team, E.LOCAL_CREDENTIALS_MISSING, headers={})


def _i_partial(h: Harness, mode: Mode) -> str:
    team = h.team("partial_credentials", {OPUS: BOTH})
    session = _session(h)
    partial = {k: v for k, v in session.items() if k != "x-byollm-aws-secret-access-key"}
    return interactive_fails(h, mode, team, E.PARTIAL_CREDENTIALS, headers=partial)


def _long_term_keys(h: Harness) -> dict[str, str]:
    world = h.stack.sim_http.get("/_sim/world").json()
    key = world["accounts"][ACCOUNT]["users"]["byollm-dev"]["access_keys"][0]
    return {"x-byollm-aws-access-key-id": key["id"], "x-byollm-aws-secret-access-key": key["secret"]}


def _i_long_term(h: Harness, mode: Mode) -> str:
    team = h.team("long_term_credentials_refused", {OPUS: BOTH})
    return interactive_fails(h, mode, team, E.LONG_TERM_CREDENTIALS_REFUSED, headers=_long_term_keys(h))


def _i_account(h: Harness, mode: Mode) -> str:
    team = h.team("aws_account_not_allowed", {OPUS: BOTH}, allowed_aws_accounts=[OTHER_ACCOUNT])
    return interactive_fails(h, mode, team, E.AWS_ACCOUNT_NOT_ALLOWED, headers=_session(h))


def _i_permissions(h: Harness, mode: Mode) -> str:
    team = h.team("insufficient_permissions", {OPUS: BOTH})
    h.revoke_model_access(OPUS_BEDROCK_ID)
    return interactive_failover(h, mode, team, E.INSUFFICIENT_PERMISSIONS, with_fallback=WITH_DIRECT,
                                alone=BEDROCK_ALONE, route_prefix="anthropic:", headers=_session(h))


def _i_region(h: Harness, mode: Mode) -> str:
    team = h.team("region_model_mismatch", {OPUS: BOTH})
    arn = h.deleted_application_profile()
    opus = {"inference_profile": arn}
    return interactive_failover(h, mode, team, E.REGION_MODEL_MISMATCH,
                                with_fallback={"models": {OPUS: {**BOTH, **opus}}, "fallback_order": []},
                                alone={"models": {OPUS: {**BEDROCK_ONLY, **opus}}}, route_prefix="anthropic:",
                                headers=_session(h))


def _i_key_rejected(h: Harness, mode: Mode) -> str:
    team = h.team("provider_key_rejected", {OPUS: DIRECT_ONLY}, byok_allowed=True)
    team.settings(monthly_ai_credits=1_000_000)  # the operator's route is the fallback
    byok = {"x-byollm-byok-anthropic": "sk-ant-fault-matrix-not-a-key"}
    return interactive_failover(h, mode, team, E.PROVIDER_KEY_REJECTED, with_fallback=DIRECT_ALONE,
                                alone=DIRECT_ALONE, alone_settings={"monthly_ai_credits": 0},
                                route_prefix="anthropic:", headers=byok)


def _i_quota(h: Harness, mode: Mode) -> str:
    team = h.team("quota_exceeded", {OPUS: BOTH})
    h.exhaust_quota(OPUS_BEDROCK_ID)
    return interactive_failover(h, mode, team, E.QUOTA_EXCEEDED, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                                route_prefix="anthropic:", headers=_session(h))


def _i_unavailable(h: Harness, mode: Mode) -> str:
    team = h.team("upstream_unavailable", {OPUS: BOTH})
    if mode is Mode.STREAM:  # the connection drops after the first event, before any content: still fails over
        h.fault(service="bedrock", model=f"{OPUS_BEDROCK_ID}*", after_events=1, reset=True)
    else:
        h.fault(service="bedrock", model=f"{OPUS_BEDROCK_ID}*", error="ServiceUnavailableException")
    return interactive_failover(h, mode, team, E.UPSTREAM_UNAVAILABLE, with_fallback=WITH_DIRECT,
                                alone=BEDROCK_ALONE, route_prefix="anthropic:", headers=_session(h),
                                detail="stream" if mode is Mode.STREAM else "ServiceUnavailableException")


SERVER_TOOL = {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]}


def _i_unsupported(h: Harness, mode: Mode) -> str:
    team = h.team("unsupported_by_route", {"gpt-5": DIRECT_ONLY, "claude-sonnet-4-6": DIRECT_ONLY})
    return interactive_failover(
        h, mode, team, E.UNSUPPORTED_BY_ROUTE, model="gpt-5", extra=SERVER_TOOL, shapes=("anthropic",),
        with_fallback={"fallback_order": ["claude-sonnet-4-6"]}, alone={"fallback_order": []},
        route_prefix="anthropic:claude-sonnet-4-6", alone_is_the_class=True)


def _i_no_fallback(h: Harness, mode: Mode) -> str:
    """Every route fails (Bedrock, the direct API, the fallback model): the attempts are all listed."""
    team = h.team("no_fallback_available", {OPUS: BOTH, "gpt-5": DIRECT_ONLY})
    team.policy(fallback_order=["gpt-5"])
    h.fault(service="bedrock", model=f"{OPUS_BEDROCK_ID}*", error="ServiceUnavailableException")
    h.fault(service="anthropic", model=f"{OPUS}*", error="overloaded_error")
    h.fault(service="openai", model="gpt-5*", error="rate_limit_exceeded")
    with h.client(team, _session(h)) as client:
        for shape in ("anthropic", "openai"):
            byollm = expect_class(_send(client, shape, _body(shape, OPUS, mode, None), {}),
                                  E.NO_FALLBACK_AVAILABLE, shape, retryable=True)  # every failure was passing
            codes = [a.get("code") for a in (byollm.get("context") or {}).get("attempts") or []]
            expected = [E.UPSTREAM_UNAVAILABLE.code, E.UPSTREAM_UNAVAILABLE.code, E.QUOTA_EXCEEDED.code]
            expect(codes == expected, f"{shape}: attempts {codes}, expected {expected}")
    return f"fails: {E.NO_FALLBACK_AVAILABLE.code} {E.NO_FALLBACK_AVAILABLE.status}"


def _i_model_not_allowed(h: Harness, mode: Mode) -> str:
    team = h.team("model_not_allowed", {OPUS: BOTH})
    return interactive_fails(h, mode, team, E.MODEL_NOT_ALLOWED, headers=_session(h), model="claude-haiku-4-5")


def _i_model_not_found(h: Harness, mode: Mode) -> str:
    """A name that is no alias, no catalog name and no Claude family the team enables: 404, as Anthropic's API."""
    team = h.team("model_not_found", {OPUS: BOTH})
    return interactive_fails(h, mode, team, E.MODEL_NOT_FOUND, headers=_session(h), model="no-such-model-1")


def _i_auto_disabled(h: Harness, mode: Mode) -> str:
    team = h.team("auto_disabled", {OPUS: BEDROCK_ONLY})  # a direct API switched off turns Auto off
    return interactive_fails(h, mode, team, E.AUTO_DISABLED, headers=_session(h), model="auto")


def _i_credits(h: Harness, mode: Mode) -> str:
    team = h.team("credits_exhausted", {"gpt-5": DIRECT_ONLY}, credits=0)
    return interactive_fails(h, mode, team, E.CREDITS_EXHAUSTED, model="gpt-5")


def _i_invalid(h: Harness, mode: Mode) -> str:
    """Bedrock refuses an empty conversation; a direct fallback exists and must not be tried."""
    team = h.team("invalid_request", {OPUS: BOTH})
    return interactive_fails(h, mode, team, E.INVALID_REQUEST, headers=_session(h), extra={"messages": []})


def _i_too_large(h: Harness, mode: Mode) -> str:
    team = h.team("payload_too_large", {OPUS: BOTH})
    big = {"messages": [{"role": "user", "content": "x" * (MATRIX_SETTINGS["max_body_bytes"] + 1024)}]}
    return interactive_fails(h, mode, team, E.PAYLOAD_TOO_LARGE, headers=_session(h), extra=big)


def _i_unauthenticated(h: Harness, mode: Mode) -> str:
    team = h.team("unauthenticated", {OPUS: BOTH})
    bad = "byollm_" + secrets.token_urlsafe(32)
    return interactive_fails(h, mode, team, E.UNAUTHENTICATED, token=bad, own_address=True)


def _i_not_found(h: Harness, mode: Mode) -> str:
    team = h.team("not_found", {OPUS: BOTH})
    return interactive_fails(h, mode, team, E.NOT_FOUND, headers={"x-byollm-team": h.other_team_uid(team)})


def _i_too_many(h: Harness, mode: Mode) -> str:
    """Too many bad tokens from one address: then even a valid token from it must wait."""
    team = h.team("too_many_attempts", {OPUS: BOTH})
    with h.client(team, token="byollm_" + secrets.token_urlsafe(32), own_address=True) as client:
        for _ in range(MATRIX_SETTINGS["failed_token_limit"]):
            expect(_send(client, "anthropic", _body("anthropic", OPUS, mode, None), {}).status == 401,
                   "a bad token was not refused as unauthenticated")
        for shape in ("anthropic", "openai"):
            expect_class(_send(client, shape, _body(shape, OPUS, mode, None),
                               {"authorization": f"Bearer {team.token}"}), E.TOO_MANY_ATTEMPTS, shape)
    return f"fails: {E.TOO_MANY_ATTEMPTS.code} {E.TOO_MANY_ATTEMPTS.status}"


# cloud runs ------------------------------------------------------------------------------------------------


def _r_role(h: Harness, mode: Mode) -> str:
    rt = h.run_team("role_assumption_failed", {OPUS: BOTH}, role=False)
    rt.team.bedrock(role_arn=make_role(h.stack, subjects=[f"scoped_principal:{new_uid()}/*"]))  # another team's
    return run_failover(h, rt, E.ROLE_ASSUMPTION_FAILED, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:", web_identity=True)


def _r_oidc(h: Harness, mode: Mode) -> str:
    rt = h.run_team("oidc_provider_missing", {OPUS: BOTH}, role=False)
    name = f"fmx-{secrets.token_hex(4)}"
    h.sim("PUT", f"/_sim/accounts/{OTHER_ACCOUNT}/roles/{name}", {"policies": {}})  # no provider in that account
    rt.team.bedrock(role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/{name}")
    return run_failover(h, rt, E.OIDC_PROVIDER_MISSING, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:", web_identity=True)


def _r_issuer(h: Harness, mode: Mode) -> str:
    rt = h.run_team("issuer_unreachable", {OPUS: BOTH})
    h.fault(service="sts", principal=h.role_arn(rt), error="IDPCommunicationError",
            message="Couldn't retrieve verification key from your identity provider")
    return run_failover(h, rt, E.ISSUER_UNREACHABLE, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:", web_identity=True)


def _r_permissions(h: Harness, mode: Mode) -> str:
    rt = h.run_team("insufficient_permissions", {OPUS: BOTH}, role_policy=HAIKU_ONLY_POLICY)
    return run_failover(h, rt, E.INSUFFICIENT_PERMISSIONS, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:")


def _r_region(h: Harness, mode: Mode) -> str:
    rt = h.run_team("region_model_mismatch", {OPUS: BOTH})
    opus = {"inference_profile": h.deleted_application_profile()}
    return run_failover(h, rt, E.REGION_MODEL_MISMATCH,
                        with_fallback={"models": {OPUS: {**BOTH, **opus}}, "fallback_order": []},
                        alone={"models": {OPUS: {**BEDROCK_ONLY, **opus}}}, route_prefix="anthropic:")


def _r_key_rejected(h: Harness, mode: Mode) -> str:
    rt = h.run_team("provider_key_rejected", {OPUS: DIRECT_ONLY, "gpt-5": DIRECT_ONLY}, role=False)
    h.fault(service="anthropic", model=f"{OPUS}*", error="authentication_error")  # the operator's key refused
    return run_failover(h, rt, E.PROVIDER_KEY_REJECTED, with_fallback=DIRECT_WITH_GPT, alone=DIRECT_ALONE,
                        route_prefix="openai:gpt-5")


def _r_quota(h: Harness, mode: Mode) -> str:
    rt = h.run_team("quota_exceeded", {OPUS: BOTH})
    h.exhaust_quota(OPUS_BEDROCK_ID)
    return run_failover(h, rt, E.QUOTA_EXCEEDED, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:")


def _r_unavailable(h: Harness, mode: Mode) -> str:
    rt = h.run_team("upstream_unavailable", {OPUS: BOTH})
    role = h.role_arn(rt).rsplit("/", 1)[-1]
    h.fault(service="bedrock", model=f"{OPUS_BEDROCK_ID}*", principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/*",
            error="ServiceUnavailableException")
    return run_failover(h, rt, E.UPSTREAM_UNAVAILABLE, with_fallback=WITH_DIRECT, alone=BEDROCK_ALONE,
                        route_prefix="anthropic:")


def _r_no_fallback(h: Harness, mode: Mode) -> str:
    """Bedrock only and no role for runs: the plan is empty, and the run says why."""
    rt = h.run_team("no_fallback_available", {OPUS: BEDROCK_ONLY}, role=False)
    run_fails(rt, E.NO_FALLBACK_AVAILABLE)
    return f"fails: {E.NO_FALLBACK_AVAILABLE.code} {E.NO_FALLBACK_AVAILABLE.status}"


def _r_model_not_allowed(h: Harness, mode: Mode) -> str:
    rt = h.run_team("model_not_allowed", {OPUS: BOTH})
    run_fails(rt, E.MODEL_NOT_ALLOWED, model="claude-haiku-4-5")
    return f"fails: {E.MODEL_NOT_ALLOWED.code} {E.MODEL_NOT_ALLOWED.status}"


def _r_auto_disabled(h: Harness, mode: Mode) -> str:
    rt = h.run_team("auto_disabled", {OPUS: BEDROCK_ONLY})
    run_fails(rt, E.AUTO_DISABLED, model="auto")
    return f"fails: {E.AUTO_DISABLED.code} {E.AUTO_DISABLED.status}"


def _r_credits(h: Harness, mode: Mode) -> str:
    rt = h.run_team("credits_exhausted", {"gpt-5": DIRECT_ONLY}, role=False, credits=0)
    run_fails(rt, E.CREDITS_EXHAUSTED, model="gpt-5")
    return f"fails: {E.CREDITS_EXHAUSTED.code} {E.CREDITS_EXHAUSTED.status}"


def _r_invalid(h: Harness, mode: Mode) -> str:
    """The upstream refuses the run's request as invalid: no failover, although gpt-5 could serve it."""
    rt = h.run_team("invalid_request", {OPUS: DIRECT_ONLY, "gpt-5": DIRECT_ONLY}, role=False)
    rt.team.policy(fallback_order=["gpt-5"])
    h.fault(service="anthropic", model=f"{OPUS}*", error="invalid_request_error")
    uid, _ = run_fails(rt, E.INVALID_REQUEST)
    row = h.logged(rt.uid, lambda r: r.get("run_uid") == uid)
    codes = [a.get("error_code") for a in row["attempts"]]
    expect(codes == [E.INVALID_REQUEST.code], f"request-log attempts {codes}: an invalid request must not fail over")
    return f"fails: {E.INVALID_REQUEST.code} {E.INVALID_REQUEST.status}"


def _r_tool_not_enabled(h: Harness, mode: Mode) -> str:
    """A run asking for a tool the operator did not enable is refused when started, with the class."""
    rt = h.run_team("tool_not_enabled", {OPUS: BOTH})
    r = rt.member.post("/runs", json={"prompt": "x", "model": OPUS, "tools": ["shell"]})
    expect(r.status_code == E.TOOL_NOT_ENABLED.status, f"start: {r.status_code} {r.text}")
    error = r.json().get("error", {})
    expect(error.get("code") == E.TOOL_NOT_ENABLED.code and error.get("remediation") == E.TOOL_NOT_ENABLED.remediation,
           f"start refused without the class and its remediation: {error}")
    return f"fails: {E.TOOL_NOT_ENABLED.code} {E.TOOL_NOT_ENABLED.status}"


# --- the table of specs -------------------------------------------------------------------------------------

_WEB_IDENTITY_ONLY = NotApplicable("web identity is used by cloud runs only; interactive Bedrock calls use the"
                                   " member's own AWS session")
_NO_DELEGATED = NotApplicable("a run sends no delegated AWS credentials (it uses web identity)")
_NO_TOKEN_IN_RUN = NotApplicable("a run's model calls are made inside byollm with no token; tokens are checked"
                                 " when the run is started through the runs API")
_NO_INJECTION = NotApplicable("only a defect inside byollm produces it; the matrix injects through the simulator"
                              " and the request, never by patching byollm")
_CONNECT_TIME_GUARD = NotApplicable(
    "an endpoint the guard refuses cannot be stored (the admin API refuses it); at request time it needs DNS"
    " rebinding or a narrowed operator allow-list, neither injectable through the simulator or the request;"
    " tests/api/test_endpoint_ssrf.py covers it with a second server whose allow-list is narrower")

_NO_TOOLS_INTERACTIVE = NotApplicable("byollm runs tools only inside cloud runs; interactive requests carry the"
                                      " client's own tools, which byollm never executes")

SPECS: dict[str, ClassSpec] = {
    "local_credentials_expired": ClassSpec(_i_local_expired, _NO_DELEGATED),
    "local_credentials_missing": ClassSpec(_i_local_missing, _NO_DELEGATED),
    "partial_credentials": ClassSpec(_i_partial, _NO_DELEGATED),
    "long_term_credentials_refused": ClassSpec(_i_long_term, _NO_DELEGATED),
    "aws_account_not_allowed": ClassSpec(_i_account, NotApplicable(
        "the account allow-list applies to delegated credentials; a run assumes the role the admin configured")),
    "role_assumption_failed": ClassSpec(_WEB_IDENTITY_ONLY, _r_role),
    "oidc_provider_missing": ClassSpec(_WEB_IDENTITY_ONLY, _r_oidc),
    "issuer_unreachable": ClassSpec(_WEB_IDENTITY_ONLY, _r_issuer),
    "insufficient_permissions": ClassSpec(_i_permissions, _r_permissions),
    "region_model_mismatch": ClassSpec(_i_region, _r_region),
    "endpoint_not_allowed": ClassSpec(_CONNECT_TIME_GUARD, _CONNECT_TIME_GUARD),
    "provider_key_rejected": ClassSpec(_i_key_rejected, _r_key_rejected),
    "quota_exceeded": ClassSpec(_i_quota, _r_quota),
    "upstream_unavailable": ClassSpec(_i_unavailable, _r_unavailable),
    "unsupported_by_route": ClassSpec(_i_unsupported, NotApplicable(
        "a run's requests carry only text and byollm's own client tools, which every route can take")),
    "no_fallback_available": ClassSpec(_i_no_fallback, _r_no_fallback),
    "model_not_allowed": ClassSpec(_i_model_not_allowed, _r_model_not_allowed),
    "model_not_found": ClassSpec(_i_model_not_found, NotApplicable(
        "a run's model is resolved when the run is started through the runs API, which refuses an unknown name"
        " before anything is queued")),
    "auto_disabled": ClassSpec(_i_auto_disabled, _r_auto_disabled),
    "credits_exhausted": ClassSpec(_i_credits, _r_credits),
    "invalid_request": ClassSpec(_i_invalid, _r_invalid),
    "payload_too_large": ClassSpec(_i_too_large, NotApplicable(
        "the body limit guards byollm's door; a run's model calls do not pass it")),
    "unauthenticated": ClassSpec(_i_unauthenticated, _NO_TOKEN_IN_RUN),
    "forbidden": ClassSpec(
        NotApplicable("no inference endpoint has a role-gated action: a token that reaches a team may call it"),
        _NO_TOKEN_IN_RUN),
    "not_found": ClassSpec(_i_not_found, NotApplicable(
        "admin-API class: a run has already resolved its team and model when it executes")),
    "conflict": ClassSpec(NotApplicable("admin-API class: no inference endpoint creates or changes a resource"),
                          NotApplicable("admin-API class: a run's execution creates no resource")),
    "too_many_attempts": ClassSpec(_i_too_many, _NO_TOKEN_IN_RUN),
    "internal_error": ClassSpec(_NO_INJECTION, _NO_INJECTION),
    "tool_not_enabled": ClassSpec(_NO_TOOLS_INTERACTIVE, _r_tool_not_enabled),
    "sandbox_unavailable": ClassSpec(_NO_TOOLS_INTERACTIVE, NotApplicable(
        "needs a worker whose bubblewrap is missing, a process setting the shared matrix server cannot change;"
        " tests/runs/test_sandbox_attacks.py runs a server with BYOLLM_BWRAP pointing at a missing file")),
}


def _missing(code: str) -> Check:
    def check(h: Harness, mode: Mode) -> str:
        raise CellFailure(f"no fault-matrix cell is defined for error class {code}; add one to SPECS")

    return check


def matrix_cells() -> list[Cell]:
    """Every cell, generated from ``ErrorClass``: a class without a spec yields cells that fail."""
    cells: list[Cell] = []
    for member in ErrorClass:
        spec = SPECS.get(member.code)
        for context in Context:
            for mode in Mode:
                entry: Check | NotApplicable
                if spec is None:
                    entry = _missing(member.code)
                elif context is Context.CLOUD_RUN and mode is Mode.STREAM:
                    entry = RUN_STREAM_NA
                else:
                    entry = spec.interactive if context is Context.INTERACTIVE else spec.cloud_run
                if isinstance(entry, NotApplicable):
                    cells.append(Cell(member.code, context, mode, None, entry.reason))
                else:
                    cells.append(Cell(member.code, context, mode, entry))
    return cells


def run_cell(h: Harness, cell: Cell) -> CellResult:
    if cell.check is None:
        return CellResult(cell, "n/a", True)
    began = time.monotonic()
    try:
        outcome = cell.check(h, cell.mode)
    except (AssertionError, httpx.HTTPError) as exc:
        return CellResult(cell, "error", False, f"{type(exc).__name__}: {exc}", time.monotonic() - began)
    finally:
        h.cleanup()
    return CellResult(cell, outcome, True, seconds=time.monotonic() - began)


def run_matrix(h: Harness, cells: Sequence[Cell] | None = None) -> list[CellResult]:
    return [run_cell(h, cell) for cell in (cells if cells is not None else matrix_cells())]


@contextlib.contextmanager
def matrix_stack(data_dir: Path) -> Iterator[Harness]:
    """The simulator and a byollm server (embedded run worker, byollm as the OIDC issuer) for the matrix."""
    with running_oidc_stack(data_dir, **MATRIX_SETTINGS) as stack:
        yield Harness(stack)


def format_table(results: Sequence[CellResult]) -> str:
    """Rows: classes; columns: context x mode; each cell its outcome and PASS/FAIL. Then n/a reasons and
    failure details."""
    columns = [(c, m) for c in Context for m in Mode]
    by_key = {(r.cell.code, r.cell.context, r.cell.mode): r for r in results}
    codes = list(dict.fromkeys(r.cell.code for r in results))

    def text(result: CellResult | None) -> str:
        if result is None:
            return ""
        if result.outcome == "n/a":
            return "n/a"
        return f"{result.outcome}  {'PASS' if result.passed else 'FAIL'}"

    headers = ["class"] + [f"{c.value} / {m.value}" for c, m in columns]
    rows = [[code] + [text(by_key.get((code, c, m))) for c, m in columns] for code in codes]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |" for row in rows]
    out.append(line)
    reasons: dict[str, list[str]] = {}
    for r in results:
        if r.cell.na_reason:
            where = f"{r.cell.code} ({r.cell.context.value}/{r.cell.mode.value})"
            reasons.setdefault(r.cell.na_reason, []).append(where)
    out.append("\nn/a cells:")
    for reason, places in reasons.items():
        out.append(f"  - {reason}:\n      " + ", ".join(places))
    failed = [r for r in results if not r.passed]
    passed = sum(1 for r in results if r.passed and r.outcome != "n/a")
    out.append(f"\n{passed} cells passed, {len(failed)} failed, "
               f"{sum(1 for r in results if r.outcome == 'n/a')} n/a")
    for r in failed:
        out.append(f"FAIL {r.cell.id}: {r.problem}")
    return "\n".join(out)
