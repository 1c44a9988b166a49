"""Egress enabled for one host: a run's shell (in its sandbox, through the in-sandbox relay and byollm's
egress proxy) reaches that host, by plain forwarding and through a CONNECT tunnel, and is refused for any
other host and for internal addresses the operator did not allow, even when they are listed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.runs_stack import RunTeam, events, new_agent, run_team, running_runs_stack, start_run, wait_run
from support.sandbox_host import needs_bwrap_and
from support.stack import Stack

pytestmark = needs_bwrap_and("curl")


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from the allowed host, path {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def allowed_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, allowed_port: int) -> Iterator[Stack]:
    # loopback is internal: only the one test server's address (and the simulator's) is allowed by the operator
    hosts = (f"localhost:{allowed_port}", "169.254.169.254:80", f"127.0.0.2:{allowed_port}")
    with running_runs_stack(Path(tmp_path_factory.mktemp("egress")), run_egress_hosts=hosts,
                            allowed_internal_networks=("127.0.0.1/32", "::1/128")) as s:
        yield s


@pytest.fixture(scope="module")
def team(stack: Stack) -> tuple[RunTeam, str]:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="claude-opus-4-7")
    return t, agent_uid


def _shell(team: tuple[RunTeam, str], command: str) -> dict[str, Any]:
    t, agent_uid = team
    run = start_run(t.member, prompt=f"Use shell with command='{command}'", agent=agent_uid)
    assert wait_run(t.member, run["uid"], timeout=40)["state"] == "succeeded"
    return dict(next(e["data"] for e in events(t.member, run["uid"]) if e["kind"] == "tool_result"))


def test_the_allowed_host_is_reached_through_the_proxy(team: tuple[RunTeam, str], allowed_port: int) -> None:
    result = _shell(team, f"echo $HTTP_PROXY; curl -sS -m 5 http://localhost:{allowed_port}/plain;"
                          f" echo; curl -sS -m 5 -p http://localhost:{allowed_port}/tunnel")
    assert result["is_error"] is False, result
    out = result["output"]
    assert "http://127.0.0.1:3128" in out
    assert "hello from the allowed host, path /plain" in out and "hello from the allowed host, path /tunnel" in out


def test_other_hosts_and_internal_addresses_are_refused(team: tuple[RunTeam, str], allowed_port: int) -> None:
    result = _shell(team, f"curl -sS -m 5 http://127.0.0.1:{allowed_port}/; echo;"
                          " curl -sS -m 5 http://example.com/; echo;"
                          f" curl -sS -m 5 http://127.0.0.2:{allowed_port}/; echo;"
                          " curl -sS -m 5 http://169.254.169.254/latest/meta-data/; echo;"
                          f" curl -sS -m 5 --noproxy \"*\" http://localhost:{allowed_port}/direct")
    out = result["output"]
    assert result["is_error"] is True and "hello from the allowed host" not in out, out
    assert out.count("not on the operator's egress allow-list") == 2, out
    assert "127.0.0.2 is a loopback address" in out and "169.254.169.254 is a link-local address" in out
    assert "Couldn't connect" in out or "Failed to connect" in out  # no way around the proxy


def test_without_egress_hosts_there_is_no_proxy(tmp_path_factory: pytest.TempPathFactory, allowed_port: int) -> None:
    with running_runs_stack(Path(tmp_path_factory.mktemp("no-egress"))) as stack:
        t = run_team(stack)
        agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="claude-opus-4-7")
        result = _shell((t, agent_uid), f"env; curl -sS -m 3 http://localhost:{allowed_port}/")
    assert "PROXY" not in result["output"] and "hello from the allowed host" not in result["output"]
    assert result["is_error"] is True
