"""Issue 16 items 2 and 5: a cloud run whose BYOLLM route fails is never quietly green.

A broken trust policy makes the run's Bedrock route fail (``role_assumption_failed``, through the real STS
exchange in the simulator). With a direct route enabled the run still succeeds, but degraded: the class is on
the run (runs API and ``byollm runs list``), its events carry the failure with its remediation, and the team's
webhook (a local receiver on loopback, which the test stack's egress allow-list admits) gets one
Slack-compatible message per class per interval. With ``degraded_runs_fail`` the run fails instead, and no
operator-paid call is made.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from byollm.errors import ErrorClass
from byollm.policy.ids import new_uid
from support.oidc_stack import make_role, running_oidc_stack
from support.runs_stack import RUN_SETTINGS, events, ledger, run_team, start_run, wait_run
from support.stack import Stack

BYOLLM = str(Path(sys.executable).with_name("byollm"))
ROLE_FAILED = ErrorClass.ROLE_ASSUMPTION_FAILED


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("runs-degraded")), **RUN_SETTINGS) as s:
        yield s


class Receiver:
    """A webhook endpoint on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/byollm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _broken_trust(stack: Stack) -> str:
    return make_role(stack, subjects=[f"scoped_principal:{new_uid()}/*"])  # trusts another team only


def test_a_run_that_needed_a_paid_fallback_ends_degraded_and_alerts(stack: Stack, receiver: Receiver) -> None:
    t = run_team(stack)  # Bedrock and the direct API both enabled
    t.team.bedrock(role_arn=_broken_trust(stack))
    t.team.settings(alert_webhook_url=receiver.url)
    run = start_run(t.member, prompt="degrade please", model="opus", max_turns=1)
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "succeeded"
    assert done["degraded"] is True and done["degraded_code"] == ROLE_FAILED.code
    assert done["degraded_remediation"] == ROLE_FAILED.remediation

    all_events = events(t.member, run["uid"])
    failures = [e["data"] for e in all_events if e["kind"] == "route_failure"]
    assert [(f["code"], f["remediation"]) for f in failures] == [(ROLE_FAILED.code, ROLE_FAILED.remediation)]
    (degraded,) = [e["data"] for e in all_events if e["kind"] == "degraded"]
    assert degraded["code"] == ROLE_FAILED.code and degraded["remediation"] == ROLE_FAILED.remediation
    call = next(e["data"] for e in all_events if e["kind"] == "model_call")
    assert call["billing"] == "ai_credits" and float(call["credits"]) > 0
    assert call["fallback_reasons"][0]["code"] == ROLE_FAILED.code

    (alert,) = receiver.wait(1)
    assert set(alert) == {"text"}
    assert ROLE_FAILED.code in alert["text"] and ROLE_FAILED.remediation in alert["text"]
    assert run["uid"] in alert["text"] and t.uid in alert["text"]
    assert t.team.token not in alert["text"] and stack.operator not in alert["text"]

    # the same class again within the interval: the run is degraded again, but nobody is paged twice
    again = start_run(t.member, prompt="degrade again", model="opus", max_turns=1)
    assert wait_run(t.member, again["uid"])["degraded_code"] == ROLE_FAILED.code
    time.sleep(1.0)
    assert len(receiver.bodies) == 1

    listed = subprocess.run([BYOLLM, "runs", "list", "--team", t.uid, "--url", stack.url],
                            env={"BYOLLM_TOKEN": t.team.token, "PATH": "/usr/bin:/bin", "COLUMNS": "250"},
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"degraded: {ROLE_FAILED.code}" in listed.stdout


def test_an_admin_can_make_degraded_runs_fail_instead(stack: Stack) -> None:
    t = run_team(stack, degraded_runs_fail=True)
    t.team.bedrock(role_arn=_broken_trust(stack))
    stack.clear_journal()
    run = start_run(t.member, prompt="fail rather than pay", model="opus", max_turns=1)
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "failed" and done["error_code"] == ROLE_FAILED.code
    assert done["remediation"] == ROLE_FAILED.remediation and done["degraded"] is False
    failures = [e["data"] for e in events(t.member, run["uid"]) if e["kind"] == "route_failure"]
    assert [f["code"] for f in failures] == [ROLE_FAILED.code]
    assert stack.journal("anthropic") == []  # the paid route was never called
    assert not [r for r in ledger(stack, t.uid) if r["bucket"] == "ai_credits"]


def test_a_webhook_url_goes_through_the_egress_guard(stack: Stack) -> None:
    t = run_team(stack)
    r = t.admin.patch("/settings", json={"alert_webhook_url": "http://169.254.169.254/latest"})
    assert r.status_code == 400 and r.json()["error"]["context"]["field"] == "alert_webhook_url"
    r = t.admin.patch("/settings", json={"alert_webhook_url": "https://user:pw@hooks.example.test/x"})
    assert r.status_code == 400
