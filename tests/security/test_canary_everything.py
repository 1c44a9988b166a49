"""One scenario that touches every part of byollm with recognisable secrets, then a scan of everything the
system wrote or returned: no secret may be anywhere it does not belong.

The scenario (one stack: simulator, byollm with its OIDC issuer and embedded run worker):

- interactive inference on both APIs, plain and streaming, with delegated AWS credentials (Bedrock), with
  BYOK keys (Anthropic and OpenAI, direct routes), through the official Anthropic SDK too;
- failing requests: every upstream faulted, a bad token, a partial credential set, an expired credential;
- a cloud run on Bedrock through web identity (a credential-shaped string pasted in its prompt and in a
  steering message), its transcript, its events as JSON and as SSE;
- the configuration doctor (GET, and POST with pasted policies);
- the panel: sign-in and every page of the team, Validate;
- the terminal client: ``byollm login``, ``keys add`` (a BYOK key), ``ask``, and the proxy serving the SDK.

The scan: every log record and the process's stdout/stderr, a full SQLite dump (``iterdump``, every table
and index), every byollm response body and header, ``/metrics``, run transcripts and events, every file the
client wrote (the token store may hold exactly the client's own token and BYOK key), everything the CLI and
the proxy printed, and the simulator's journal, where each value may reach only its own destination (an
operator or BYOK key only its provider, AWS session tokens only AWS, web-identity tokens only STS, and
byollm's own tokens, the KEK, AWS secret keys and the panel session nowhere).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from typer.testing import CliRunner

from byollm.cli.main import app as cli_app
from byollm.client.tokenstore import secrets_file_path
from support.canary import LogRecords, canary_world
from support.client_env import make_client_env, running_proxy
from support.oidc_stack import make_role, minted_tokens, running_oidc_stack
from support.runs_stack import RUN_SETTINGS, events, new_agent, sse, start_run, team_client, wait_event, wait_run
from support.stack import KEK, Stack

OPERATOR_KEYS = {
    "anthropic": "sk-ant-CANARY0all0operator0anthropic00000001",
    "openai": "sk-CANARY0all0operator0openai000000000000001",
    "google": "AIzaCANARY0all0operator0google0000000000001",
}
BYOK_ANTHROPIC = "sk-ant-CANARY0all0byok0anthropic000000000001"
BYOK_OPENAI = "sk-CANARY0all0byok0openai00000000000000000001"
BYOK_CLIENT = "sk-ant-CANARY0all0client0byok0000000000000001"
PASTED = "sk-ant-CANARY0all0pasted0in0a0prompt000000001"
MODEL_UPSTREAMS = frozenset({"bedrock-runtime", "anthropic", "openai", "google"})
AWS = frozenset({"bedrock-runtime", "bedrock", "sts", "iam", "signin"})
PAGES = ("models", "agents", "members", "usage", "runs", "audit", "validate")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _world() -> dict[str, Any]:
    return canary_world({"anthropic": [OPERATOR_KEYS["anthropic"], BYOK_ANTHROPIC, BYOK_CLIENT],
                         "openai": [OPERATOR_KEYS["openai"], BYOK_OPENAI], "google": [OPERATOR_KEYS["google"]]})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("canary-all")), world=_world(), **RUN_SETTINGS) as s:
        yield s


class Records(LogRecords):
    """``LogRecords`` that also keeps, apart, what the HTTP clients' wire trace (httpcore, httpx) logged.

    byollm's server side never uses httpx (its upstream pool is aiohttp), so those loggers carry only this
    test's own clients, the terminal client and the simulator: where a response's ``Set-Cookie`` (the
    panel session, sent there by design) may legitimately show up."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("httpcore", "httpx")):
            self.wire.append(self.format(record))
        else:
            super().emit(record)


class Seen:
    """Every byollm response (headers and body) any client of this test received."""

    def __init__(self) -> None:
        self.blobs: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.blobs.append(f"{response.request.method} {response.request.url}\n{dict(response.headers)}\n"
                          f"{response.text}")

    def client(self, stack: Stack, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=stack.url, timeout=60, headers=headers, event_hooks={"response": [self]}, **kw)


# --- the scenario, part by part ------------------------------------------------------------------------------


def _interactive(stack: Stack, seen: Seen, token: str, creds: Mapping[str, str]) -> None:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
    chat = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hello"}]}
    gpt = {"model": "gpt-5", "messages": [{"role": "user", "content": "hello"}]}
    byok = {"x-byollm-byok-anthropic": BYOK_ANTHROPIC, "x-byollm-byok-openai": BYOK_OPENAI}
    with seen.client(stack, token) as client:
        for headers in (dict(creds), byok):  # Bedrock with the user's session, then the direct routes with BYOK
            for stream in (False, True):
                ok = client.post("/v1/messages", json={**body, "stream": stream}, headers=headers)
                assert ok.status_code == 200, ok.text
                ok = client.post("/v1/chat/completions", json={**chat, "stream": stream}, headers=headers)
                assert ok.status_code == 200, ok.text
            client.post("/v1/messages/count_tokens", json=body, headers=headers)
            client.get("/v1/models", headers=headers)
        served = client.post("/v1/chat/completions", json=gpt, headers=byok)
        assert served.status_code == 200 and served.headers["x-byollm-route"].startswith("openai"), served.text
        for model, headers in (("claude-sonnet-4-6", dict(creds)), ("claude-sonnet-4-6", byok), ("gpt-5", byok)):
            for stream in (False, True):  # the Responses API: translated for Claude, passed through to OpenAI
                ok = client.post("/v1/responses", json={"model": model, "input": "hello", "stream": stream},
                                 headers=headers)
                assert ok.status_code == 200, ok.text
        # failures: every upstream faulted, a bad token, a partial and an expired credential set
        for service, error in (("bedrock", "ThrottlingException"), ("anthropic", "overloaded_error"),
                               ("openai", "server_error"), ("google", "server_error")):
            stack.fault(service=service, error=error, count=20)
        failed = client.post("/v1/messages", json=body, headers={**creds, **byok})
        assert failed.status_code >= 400 and failed.json()["error"]["byollm"]["code"] == "no_fallback_available"
        stack.clear_faults()
        assert client.post("/v1/messages", json=body, headers={"authorization": f"Bearer {token}x"}).status_code == 401
        partial = {k: v for k, v in creds.items() if "session-token" not in k}
        assert client.post("/v1/messages", json=body, headers=partial).status_code >= 400
        client.post("/v1/messages", json=body, headers={**creds, "x-byollm-aws-expiration": "2001-01-01T00:00:00Z"})
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=dict(creds), max_retries=0)
    raw = sdk.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=30,
                                                messages=[{"role": "user", "content": "hi"}])
    seen.blobs.append(f"{dict(raw.headers)}\n{raw.http_response.text}")
    with sdk.messages.stream(model="claude-haiku-4-5", max_tokens=30,
                             messages=[{"role": "user", "content": "hi"}]) as streamed:
        seen.blobs.extend(str(event) for event in streamed)


def _run(stack: Stack, seen: Seen, team_uid: str, token: str) -> str:
    """Runs on Bedrock through web identity; returns the agent's token (a secret too)."""
    agent_uid, agent_token = new_agent(stack, team_uid, tools=["shell"], default_model="claude-haiku-4-5")
    with seen.client(stack, token) as plain:
        member = team_client(stack, token, team_uid)
        member.event_hooks = {"response": [seen]}
        run = start_run(member, prompt=f"Please summarise; my key is {PASTED}", model="claude-haiku-4-5")
        assert wait_run(member, run["uid"])["state"] == "succeeded", events(member, run["uid"])
        assert any(e["kind"] == "model_call" for e in events(member, run["uid"]))
        sse(member, run["uid"])
        member.get(f"/runs/{run['uid']}/transcript")
        slow = start_run(member, prompt=f'Use shell with command="env; echo {PASTED}; sleep 20"', agent=agent_uid)
        wait_event(member, slow["uid"], "tool_call")
        member.post(f"/runs/{slow['uid']}/steer", json={"message": f"and this key too {PASTED}"})
        member.post(f"/runs/{slow['uid']}/cancel")
        wait_run(member, slow["uid"])
        member.get(f"/runs/{slow['uid']}/transcript")
        member.get(f"/runs/{slow['uid']}/events", headers={"accept": "application/json"})
        member.get("/runs")
        member.close()
        plain.get("/api/v1/me")
    with seen.client(stack, agent_token) as agent:
        own = agent.post(f"/api/v1/teams/{team_uid}/runs", json={"prompt": "agent's own run"})
        assert own.status_code == 201, own.text
        wait_run(team_client(stack, agent_token, team_uid), own.json()["uid"])
    return agent_token


def _doctor_and_panel(stack: Stack, seen: Seen, team_uid: str, role: str) -> str:
    with seen.client(stack, stack.operator) as op:
        assert op.get(f"/api/v1/teams/{team_uid}/doctor").status_code == 200
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                                          "Principal": {"Federated": "x"}}]}
        assert op.post(f"/api/v1/teams/{team_uid}/doctor", json={"trust_policy": trust}).status_code == 200
        op.get(f"/api/v1/teams/{team_uid}/iam/trust-policy")
        op.get(f"/api/v1/teams/{team_uid}/audit")
        op.get(f"/api/v1/teams/{team_uid}/requests")
        op.get(f"/api/v1/teams/{team_uid}/usage")
        op.get("/api/v1/operator/provider-keys")
    with seen.client(stack, follow_redirects=False) as browser:
        csrf = _CSRF.search(browser.get("/admin").text)
        assert csrf
        signed = browser.post("/admin/sign-in", data={"csrf_token": csrf.group(1), "token": stack.operator})
        assert signed.status_code == 303, signed.text
        sid = str(signed.cookies["byollm_panel"])
        for page in PAGES:
            assert browser.get(f"/admin/{team_uid}/{page}").status_code == 200, page
        csrf = _CSRF.search(browser.get("/admin").text)
        assert csrf
        browser.post(f"/admin/{team_uid}/validate", data={"csrf_token": csrf.group(1), "trust_policy": ""})
        browser.post("/admin/sign-in", data={"csrf_token": csrf.group(1), "token": f"byo_{'Q' * 43}"})
    return sid


def _client(stack: Stack, team: Any, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Path], list[str]]:
    env = make_client_env(tmp, stack, team, monkeypatch, profile="sim-process")
    runner = CliRunner()
    printed: list[str] = []

    def cli(*args: str, input: str | None = None) -> None:
        result = runner.invoke(cli_app, list(args), input=input)
        printed.append(result.output)
        assert result.exit_code == 0, result.output

    cli("login", "--url", stack.url, "--token-stdin", input=team.token + "\n")
    cli("keys", "add", "anthropic", "--stdin", input=BYOK_CLIENT + "\n")
    cli("ask", "canary question")
    with running_proxy() as proxy:
        sdk = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key, max_retries=0)
        sdk.messages.create(model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        printed.append(proxy.said())
    files = [p for d in (*env.written_dirs, tmp / "home") if d.exists() for p in d.rglob("*") if p.is_file()]
    return files, printed


# --- the scan ------------------------------------------------------------------------------------------------


def _sqlite_dump(stack: Stack) -> str:
    path = stack.settings.data_dir / "byollm.sqlite3"
    assert path.exists() and stack.settings.database_url.startswith("sqlite"), stack.settings.database_url
    with sqlite3.connect(path) as conn:
        return "\n".join(conn.iterdump())


def test_no_secret_anywhere_the_system_writes_or_returns(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    records = Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    seen = Seen()
    stack.clear_journal()
    try:
        team = stack.new_team(byok_allowed=True, platform_credits=1000, compute_credits=100_000)
        role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
        team.bedrock(role_arn=role)
        creds = stack.delegated_headers()
        _interactive(stack, seen, team.token, creds)
        agent_token = _run(stack, seen, team.uid, team.token)
        panel_sid = _doctor_and_panel(stack, seen, team.uid, role)
        client_files, printed = _client(stack, team, tmp_path / "client", monkeypatch)
        with seen.client(stack) as anonymous:
            metrics = anonymous.get("/metrics").text
        stack.admin.get("/me")  # a last request: the request-log writer flushes at least every 100 ms
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    captured = capfd.readouterr()

    issued = list(stack.sim.state._session_keys.values())
    wi_tokens = minted_tokens(stack)
    assert issued and wi_tokens, "the scenario obtained AWS credentials and exchanged web-identity tokens"
    # name -> (value, upstream services that may receive it)
    secrets: dict[str, tuple[str, frozenset[str]]] = {
        "member_token": (team.token, frozenset()),
        "operator_token": (stack.operator, frozenset()),
        "agent_token": (agent_token, frozenset()),
        "kek": (KEK, frozenset()),
        "panel_session": (panel_sid, frozenset()),
        "delegated_secret": (creds["x-byollm-aws-secret-access-key"], frozenset()),
        "delegated_session_token": (creds["x-byollm-aws-session-token"], AWS),
        "byok_anthropic": (BYOK_ANTHROPIC, frozenset({"anthropic"})),
        "byok_openai": (BYOK_OPENAI, frozenset({"openai"})),
        "byok_client": (BYOK_CLIENT, frozenset({"anthropic"})),
        "pasted": (PASTED, MODEL_UPSTREAMS),  # the user's own prompt goes to the model; byollm stores none of it
        **{f"operator_{k}": (v, frozenset({k})) for k, v in OPERATOR_KEYS.items()},
        **{f"web_identity_token_{i}": (v, frozenset({"sts"})) for i, v in enumerate(wi_tokens)},
        **{f"aws_secret_{i}": (s.secret_access_key, frozenset()) for i, s in enumerate(issued)},
        **{f"aws_session_token_{i}": (s.session_token or "", AWS) for i, s in enumerate(issued)},
    }
    places = {
        "logs": "\n".join(records.lines), "client wire logs": "\n".join(records.wire),
        "stdout": captured.out, "stderr": captured.err,
        "responses": "\n".join(seen.blobs), "metrics": metrics, "database": _sqlite_dump(stack),
        "client output": "\n".join(printed),
    }
    store_file = secrets_file_path()
    for path in client_files:
        places[f"client file {path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    own = {team.token, BYOK_CLIENT}  # the client's token store holds exactly these
    by_design = {("panel_session", "responses"), ("panel_session", "client wire logs")}  # its Set-Cookie
    hits = [(name, where) for name, (value, _) in secrets.items() if value
            for where, blob in places.items() if value in blob and (name, where) not in by_design
            and not (where == f"client file {store_file.name}" and value in own)]
    assert hits == []
    assert len(seen.blobs) > 60 and len(places["database"]) > 10_000 and records.lines
    assert store_file in client_files and stat.S_IMODE(store_file.stat().st_mode) == 0o600
    assert "You said" in places["responses"] or "content" in places["responses"]

    # the simulator's journal: each value only at its own destination
    journal = stack.journal()
    assert {e["service"] for e in journal} >= {"bedrock-runtime", "anthropic", "openai", "sts"}
    leaks = []
    for entry in journal:
        blob = str(entry["headers"]) + str(entry["body"])
        for name, (value, allowed) in secrets.items():
            if value and value in blob and entry["service"] not in allowed:
                leaks.append((name, entry["service"], entry["path"]))
        if entry["service"] in ("anthropic", "openai", "google"):
            names = {str(k).lower() for k, _ in entry["headers"]}
            assert not any(n.startswith(("x-byollm", "x-amz")) for n in names), entry["headers"]
    assert leaks == []
