"""``byollm demo``: the product end to end on this machine, with nothing outside it touched.

It starts the cloud simulator and a byollm server on free loopback ports with a temporary SQLite database,
seeds a team the way an admin would (through the admin API), and walks through the flows that exist,
printing what happened at each step. With ``check=True`` it runs the same steps without pausing and
reports whether every step behaved as expected (the exit code of ``byollm demo --check``).

Each step is a small function returning a ``StepResult``; a step that raises is a failed step, not a
crashed demo, so the summary always prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

__all__ = ["DemoRun", "run_demo"]

DEMO_ACCOUNT = "111122223333"


@dataclass
class StepResult:
    title: str
    ok: bool
    lines: list[str]


@dataclass
class DemoRun:
    """The live demo environment: URLs, tokens and clients the steps use."""

    sim_url: str
    url: str
    team_uid: str
    member_token: str
    admin: httpx.Client
    sim: httpx.Client

    def delegated_headers(self) -> dict[str, str]:
        """Session credentials for the simulator's developer, as `aws login` would provide them."""
        creds = self.sim.post("/signin/_sim/session-credentials", json={"user": "byollm-dev", "duration_s": 900}).json()
        return {
            "x-byollm-aws-access-key-id": creds["AccessKeyId"],
            "x-byollm-aws-secret-access-key": creds["SecretAccessKey"],
            "x-byollm-aws-session-token": creds["SessionToken"],
            "x-byollm-aws-expiration": creds["Expiration"],
        }

    def ask(self, model: str, prompt: str, headers: dict[str, str] | None = None,
            path: str = "/v1/messages") -> httpx.Response:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        if path == "/v1/messages":
            body["max_tokens"] = 120
        return httpx.post(self.url + path, json=body, timeout=60,
                          headers={"authorization": f"Bearer {self.member_token}", **(headers or {})})

    def request_log(self) -> list[dict[str, Any]]:
        r = self.admin.get(f"/teams/{self.team_uid}/requests", params={"limit": 50})
        r.raise_for_status()
        return list(r.json())


def _text_of(response: httpx.Response) -> str:
    data = response.json()
    if "choices" in data:
        return str(data["choices"][0]["message"]["content"])
    return "".join(b.get("text", "") for b in data.get("content", []))


def _route_lines(response: httpx.Response) -> list[str]:
    h = response.headers
    return [f"route: {h.get('x-byollm-route')}   fallbacks: {h.get('x-byollm-fallbacks')}"
            f"   gateway overhead: {h.get('x-byollm-overhead-ms')} ms   request id: {h.get('x-request-id')}"]


def _wait_for_log(run: DemoRun, request_id: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for row in run.request_log():
            if row["request_id"] == request_id:
                return row
        time.sleep(0.1)
    return None


# --- the steps ------------------------------------------------------------------------------------------------


def step_bedrock(run: DemoRun) -> StepResult:
    r = run.ask("claude-opus-4-7", "Hello from the demo", run.delegated_headers())
    ok = r.status_code == 200 and r.headers.get("x-byollm-route", "").startswith("bedrock:global.")
    lines = [f"HTTP {r.status_code}: {_text_of(r) if r.status_code == 200 else r.text}", *_route_lines(r)]
    row = _wait_for_log(run, r.headers.get("x-request-id", ""))
    if row is not None:
        lines.append(f"billing: {row['billing']} (AI credits charged: {row['credits']})")
        ok = ok and row["billing"] == "customer_cloud" and float(row["credits"]) == 0
    invocations = run.sim.get("/_sim/invocations").json()
    last = (invocations.get("invocations") or [{}])[-1] if isinstance(invocations, dict) else {}
    if last:
        lines.append(f"the customer's invocation log (as {last.get('identity', {}).get('arn')}) carries byollm's"
                     f" tags: {last.get('requestMetadata')}")
    return StepResult("Interactive request on Bedrock with the user's own AWS session", ok, lines)


def step_failover(run: DemoRun) -> StepResult:
    run.sim.post("/_sim/faults", json={"service": "bedrock", "error": "ThrottlingException", "count": 1})
    r = run.ask("claude-opus-4-7", "Bedrock is throttled now", run.delegated_headers())
    ok = r.status_code == 200 and r.headers.get("x-byollm-route", "").startswith("anthropic:")
    lines = [f"HTTP {r.status_code}: {_text_of(r) if r.status_code == 200 else r.text}", *_route_lines(r)]
    row = _wait_for_log(run, r.headers.get("x-request-id", ""))
    if row is not None:
        attempts = ", ".join(f"{a['route']} -> {a['error_code'] or 'ok'}" for a in row["attempts"])
        lines += [f"attempts: {attempts}", f"billing: {row['billing']} (AI credits charged: {row['credits']})"]
        ok = ok and row["billing"] == "ai_credits" and float(row["credits"]) > 0
    return StepResult("Bedrock throttles: failover to the direct API, which spends AI credits", ok, lines)


def step_openai(run: DemoRun) -> StepResult:
    r = run.ask("claude-sonnet-4-6", "Hello through the OpenAI-compatible endpoint", run.delegated_headers(),
                path="/v1/chat/completions")
    ok = r.status_code == 200 and r.headers.get("x-byollm-route", "").startswith("bedrock:")
    return StepResult("OpenAI Chat Completions API, served by Claude on Bedrock", ok,
                      [f"HTTP {r.status_code}: {_text_of(r) if r.status_code == 200 else r.text}", *_route_lines(r)])


def step_expired(run: DemoRun) -> StepResult:
    headers = run.delegated_headers()
    run.sim.post(f"/_sim/credentials/{headers['x-byollm-aws-access-key-id']}/expire")
    before = len(run.sim.get("/_sim/requests", params={"service": "anthropic"}).json()["requests"])
    r = run.ask("claude-opus-4-7", "My session just expired", headers)
    after = len(run.sim.get("/_sim/requests", params={"service": "anthropic"}).json()["requests"])
    error = r.json().get("error", {}).get("byollm", {})
    ok = r.status_code == 401 and error.get("code") == "local_credentials_expired" and after == before
    return StepResult("Expired AWS session: fails fast, no paid fallback, one sentence to fix it", ok, [
        f"HTTP {r.status_code} {error.get('code')}: {error.get('message')}",
        f"remediation: {error.get('remediation')}",
        f"requests sent to the direct API meanwhile: {after - before}",
    ])


def step_nothing_left(run: DemoRun) -> StepResult:
    run.admin.patch(f"/teams/{run.team_uid}/policy", json={"direct_api_disabled": True})
    run.sim.post("/_sim/faults", json={"service": "bedrock", "error": "ServiceUnavailableException", "count": 3})
    try:
        r = run.ask("claude-opus-4-7", "Bedrock is down and the admin disabled direct APIs", run.delegated_headers())
    finally:
        run.sim.delete("/_sim/faults")
        run.admin.patch(f"/teams/{run.team_uid}/policy", json={"direct_api_disabled": False})
    error = r.json().get("error", {}).get("byollm", {})
    attempts = error.get("context", {}).get("attempts", [])
    ok = r.status_code == 424 and error.get("code") == "no_fallback_available" and bool(attempts)
    return StepResult("Direct APIs disabled and Bedrock down: a clear error listing every attempt", ok, [
        f"HTTP {r.status_code} {error.get('code')}: {error.get('message')}",
        *(f"  {a['route']}: {a['code']} - {a['remediation']}" for a in attempts),
    ])


def step_policy_view(run: DemoRun) -> StepResult:
    policy = run.admin.get(f"/teams/{run.team_uid}/policy").json()
    models = httpx.get(run.url + "/v1/models", timeout=30,
                       headers={"authorization": f"Bearer {run.member_token}", **run.delegated_headers()}).json()
    lines = [f"team {run.team_uid} (its admin pages live under /admin/{run.team_uid}/...), region {policy['region']}"]
    for m in models["data"]:
        hops = [f"{r['host']}:{r['upstream_model_id']}" for r in m["byollm"]["routes"]]
        routes = " -> ".join(hops) or "(chosen per task)"
        lines.append(f"  {m['id']:<20} {routes}")
    ok = any(m["id"] == "auto" for m in models["data"]) and policy["auto_allowed"]
    return StepResult("What this member may use, with each model's ordered routes", ok, lines)


def _run_to_end(run: DemoRun, prompt: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started = httpx.post(f"{run.url}/api/v1/teams/{run.team_uid}/runs", timeout=30,
                         headers={"authorization": f"Bearer {run.member_token}"},
                         json={"prompt": prompt, "model": "claude-opus-4-7"})
    started.raise_for_status()
    uid = started.json()["uid"]
    deadline = time.monotonic() + 30
    while True:
        state = httpx.get(f"{run.url}/api/v1/teams/{run.team_uid}/runs/{uid}", timeout=30,
                          headers={"authorization": f"Bearer {run.member_token}"}).json()
        if state["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    events = httpx.get(f"{run.url}/api/v1/teams/{run.team_uid}/runs/{uid}/events", timeout=30,
                       headers={"authorization": f"Bearer {run.member_token}", "accept": "application/json"}).json()
    return state, list(events)


def _event_lines(events: list[dict[str, Any]]) -> list[str]:
    lines = []
    for e in events:
        d = e["data"]
        if e["kind"] == "model_call":
            lines.append(f"  model call: {d['route']} (fallbacks {d['fallbacks']})"
                         + (f", as {d['assumed_role_arn']}" if d.get("assumed_role_arn") else ""))
        elif e["kind"] in ("web_identity_failure", "route_failure"):
            lines.append(f"  {e['kind']}: {d.get('code')}: {d.get('message')}")
            lines.append(f"    remediation: {d.get('remediation')}")
        elif e["kind"] == "credits":
            lines.append(f"  charged {d['credits']} {d['bucket']} credits")
        elif e["kind"] == "state":
            lines.append(f"  state: {d['state']}")
    return lines


def step_cloud_run(run: DemoRun) -> StepResult:
    state, events = _run_to_end(run, "Summarise our open incidents")
    calls = [e["data"] for e in events if e["kind"] == "model_call"]
    ok = (state["state"] == "succeeded" and bool(calls) and calls[0]["route"].startswith("bedrock:")
          and "assumed-role/byollm-team/" in str(calls[0].get("assumed_role_arn")))
    return StepResult("Cloud agent run: byollm's own OIDC token, exchanged with STS for the team's role", ok,
                      [f"run {state['uid']}: {state['state']}", *_event_lines(events)])


def step_cloud_run_misconfigured(run: DemoRun) -> StepResult:
    run.sim.post(f"/_sim/accounts/{DEMO_ACCOUNT}/web-identity-trust", json={
        "issuer": run.url, "role": "byollm-team", "subject": "scoped_principal:SomeOtherTeamUid000000/*"})
    try:
        state, events = _run_to_end(run, "Now the trust policy names another team")
    finally:
        run.sim.post(f"/_sim/accounts/{DEMO_ACCOUNT}/web-identity-trust", json={
            "issuer": run.url, "role": "byollm-team", "subject": f"scoped_principal:{run.team_uid}/*"})
    failures = [e["data"] for e in events if e["kind"] == "web_identity_failure"]
    calls = [e["data"] for e in events if e["kind"] == "model_call"]
    ok = (bool(failures) and failures[0]["code"] == "role_assumption_failed" and bool(calls)
          and calls[0]["route"].startswith("anthropic:"))
    return StepResult("Trust policy pinned to another team: role assumption failed, named in the run's events,"
                      " and the run fails over to the direct API the admin enabled", ok,
                      [f"run {state['uid']}: {state['state']}", *_event_lines(events)])


STEPS: list[Callable[[DemoRun], StepResult]] = [
    step_policy_view, step_bedrock, step_failover, step_openai, step_expired, step_nothing_left,
    step_cloud_run, step_cloud_run_misconfigured,
]


# --- setting the stage ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def demo_environment(data_dir: Path) -> Iterator[DemoRun]:
    from byollm.api.app import create_app
    from byollm.api.serving import ServerThread, bind_socket, socket_url
    from byollm.control.bootstrap import bootstrap_operator
    from byollm.settings import Settings
    from byollm.sim import SimServer

    with SimServer() as sim:
        sock = bind_socket()  # bound first: its URL is the OIDC issuer the simulated STS fetches keys from
        settings = Settings.for_data_dir(
            data_dir, kek=None, allow_http_endpoints=True, anthropic_base_url=f"{sim.url}/anthropic",
            openai_base_url=f"{sim.url}/openai/v1", google_base_url=f"{sim.url}/google", sts_endpoint_url=sim.url,
            public_url=socket_url(sock), oidc_key_publish_delay_seconds=0.0, oidc_jwks_max_age_seconds=5,
            allowed_internal_networks=("127.0.0.0/8",),  # the team's Bedrock endpoint is the simulator on loopback
        )
        boot = asyncio.run(bootstrap_operator(settings, email="admin@demo.example", team_name="demo"))
        assert boot.team_uid is not None
        with ServerThread(create_app(settings), sock=sock) as server, \
                httpx.Client(base_url=server.url + "/api/v1", timeout=30,
                             headers={"authorization": f"Bearer {boot.token}"}) as admin, \
                httpx.Client(base_url=sim.url, timeout=30) as sim_http:
            team = boot.team_uid
            for provider, conf in sim_http.get("/_sim/world").json()["direct"].items():
                key = {"api_key": conf["api_keys"][0]}
                admin.put(f"/operator/provider-keys/{provider}", json=key).raise_for_status()
            admin.patch(f"/teams/{team}/bedrock", json={
                "region": "us-east-1", "endpoint_url": sim.url,
                "role_arn": f"arn:aws:iam::{DEMO_ACCOUNT}:role/byollm-team"}).raise_for_status()
            admin.patch(f"/teams/{team}/settings", json={"monthly_ai_credits": 10_000, "platform_credits": 100,
                                                         "compute_credits": 10_000}).raise_for_status()
            # what the customer's cloud admin does once: trust byollm's issuer for this team's runs
            sim_http.post(f"/_sim/accounts/{DEMO_ACCOUNT}/web-identity-trust", json={
                "issuer": server.url, "role": "byollm-team", "subject": f"scoped_principal:{team}/*",
                "audience": "sts.amazonaws.com"}).raise_for_status()
            admin.patch(f"/teams/{team}/policy", json={
                "models": {"claude-opus-4-7": {"bedrock": True, "direct": True},
                           "claude-sonnet-4-6": {"bedrock": True, "direct": True},
                           "gpt-5": {"direct": True}},
                "fallback_order": ["claude-sonnet-4-6", "gpt-5"]}).raise_for_status()
            member = admin.post(f"/teams/{team}/members", json={"email": "dev@demo.example"}).json()
            issued = admin.post(f"/teams/{team}/tokens", json={"name": "demo", "user_uid": member["user_uid"]}).json()
            yield DemoRun(sim_url=sim.url, url=server.url, team_uid=team, member_token=issued["token"],
                          admin=admin, sim=sim_http)


def run_demo(*, check: bool, console: Console | None = None, keep_running: bool | None = None) -> int:
    """Run the walkthrough; returns 0 when every step behaved as expected."""
    console = console or Console(highlight=False)
    if keep_running is None:
        keep_running = not check and sys.stdin.isatty()
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="byollm-demo-") as tmp:
        os.chmod(tmp, 0o700)
        console.print(Panel.fit(
            "byollm demo: a gateway and control plane for AI agents on your own AWS Bedrock.\n"
            "Everything runs on this machine: AWS (STS, IAM, Bedrock) and the Anthropic, OpenAI and Google APIs\n"
            "are byollm's local simulator; the database is a temporary SQLite file.", title="byollm"))
        with contextlib.ExitStack() as stack:
            with console.status("starting the simulator and the gateway..."):
                run = stack.enter_context(demo_environment(Path(tmp)))
            console.print(f"gateway  {run.url}   (admin API docs: {run.url}/api/docs)\n"
                          f"simulator {run.sim_url}   (world: {run.sim_url}/_sim/world)\n")
            for number, step in enumerate(STEPS, start=1):
                try:
                    result = step(run)
                except Exception as exc:  # a failed step is reported, the demo goes on
                    result = StepResult(step.__name__, False, [f"{type(exc).__name__}: {exc}"])
                results.append(result)
                mark = "[green]ok[/]" if result.ok else "[red]UNEXPECTED[/]"
                console.print(f"[bold]{number}. {result.title}[/]  {mark}")
                for line in result.lines:
                    console.print(f"   {line}", soft_wrap=True, markup=False)
                console.print()
            _summary(console, results)
            if keep_running:
                console.print(f"Still running. Try it yourself:\n"
                              f"  curl -s {run.url}/v1/messages -H 'authorization: Bearer {run.member_token}' "
                              "-H 'content-type: application/json' "
                              "-d '{\"model\":\"gpt-5\",\"max_tokens\":50,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'\n"
                              "Press Ctrl-C to stop (the temporary database is deleted).")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
    return 0 if results and all(r.ok for r in results) else 1


def _summary(console: Console, results: list[StepResult]) -> None:
    table = Table(title="demo summary")
    table.add_column("step")
    table.add_column("result")
    for r in results:
        table.add_row(r.title, "ok" if r.ok else "UNEXPECTED")
    console.print(table)
    console.print("Also built, not narrated here: the terminal client (`byollm login`, `chat`, `proxy`, `doctor"
                  " --local`), the admin panel (/admin, sign in with an admin token) and the configuration doctor"
                  " (`byollm doctor --team <team>`, or the panel's Validate page).")
