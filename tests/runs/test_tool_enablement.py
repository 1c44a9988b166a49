"""Tools exist only where the operator enables them (``BYOLLM_RUN_TOOLS``): until then a team admin cannot
give an agent a tool and nobody can run one (``tool_not_enabled`` with its remediation); an agent whose tool
the operator later disables keeps no way to use it: new runs do not get it, asking for it is refused, and a
run queued before is executed without it (its model is never offered the tool)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.errors import ErrorClass
from support.runs_stack import (
    events,
    new_agent,
    run_team,
    running_runs_stack,
    spawn_server,
    start_run,
    team_client,
    wait_run,
)
from support.stack import Stack

NOT_ENABLED = ErrorClass.TOOL_NOT_ENABLED


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_runs_stack(Path(tmp_path_factory.mktemp("tools-off")), run_tools=()) as s:
        yield s


def _refused(response: httpx.Response) -> None:
    assert response.status_code == NOT_ENABLED.status, response.text
    error = response.json()["error"]
    assert error["code"] == NOT_ENABLED.code and "BYOLLM_RUN_TOOLS" in error["remediation"]


def test_tools_are_refused_until_the_operator_enables_them(stack: Stack) -> None:
    t = run_team(stack)
    # a team admin (here the operator, admin of every team) cannot give an agent a tool that is off
    _refused(stack.admin.post(f"/teams/{t.uid}/agents", json={"name": "sh-agent", "tools": ["shell"]}))
    plain_uid, _ = new_agent(stack, t.uid, default_model="opus")
    _refused(stack.admin.patch(f"/teams/{t.uid}/agents/{plain_uid}", json={"tools": ["shell"]}))
    # nobody can ask for it in a run
    _refused(t.member.post("/runs", json={"prompt": "x", "model": "opus", "tools": ["shell"]}))
    _refused(t.member.post("/runs", json={"prompt": "x", "agent": plain_uid, "tools": ["shell"]}))
    # an unknown tool is still a plain invalid request
    r = t.member.post("/runs", json={"prompt": "x", "model": "opus", "tools": ["browser"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_a_tool_disabled_later_is_refused_to_the_agents_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = Path(tmp_path_factory.mktemp("disabled-logs"))
    # the first deployment enabled the shell and gave it to an agent; its gateway executes no runs
    with running_runs_stack(Path(tmp_path_factory.mktemp("disabled")), run_worker_embedded=False) as stack:
        t = run_team(stack)
        agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="claude-opus-4-7")
        queued = start_run(t.member, prompt='Use shell with command="echo should-not-run"', agent=agent_uid)
        assert queued["tools"] == ["shell"]
        # then the operator turns the shell off: a server on the same database with BYOLLM_RUN_TOOLS empty
        server = spawn_server(stack, logs / "serve.log", BYOLLM_RUN_WORKER_EMBEDDED="1", BYOLLM_RUN_TOOLS="")
        try:
            with team_client(stack, t.team.token, t.uid, url=server.url) as member:
                _refused(member.post("/runs", json={"prompt": "x", "agent": agent_uid, "tools": ["shell"]}))
                fresh = start_run(member, prompt='Use shell with command="echo should-not-run"', agent=agent_uid)
                assert fresh["tools"] == []
                for run in (queued, fresh):
                    assert wait_run(member, run["uid"], timeout=30)["state"] == "succeeded"
                    kinds = [e["kind"] for e in events(member, run["uid"])]
                    assert "tool_call" not in kinds and "tool_result" not in kinds, kinds
        finally:
            server.stop()
