"""``byollm runs`` over the API and ``byollm worker``'s options, through the real command line app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from byollm.cli.main import app
from support.runs_stack import new_agent, run_team, wait_run
from support.stack import Stack

runner = CliRunner()


def _run(stack: Stack, token: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", stack.url, "--token", token])
    return result.exit_code, result.output


def test_runs_start_watch_list_steer_cancel(stack: Stack) -> None:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
    code, output = _run(stack, t.team.token, "runs", "start", 'Use shell with command="echo from-cli"', "--team",
                        t.uid, "--agent", agent_uid, "--watch")
    assert code == 0, output
    assert "from-cli" in output and "succeeded" in output and "tool shell" in output
    code, output = _run(stack, t.team.token, "runs", "list", "--team", t.uid, "--json")
    assert code == 0, output
    runs = json.loads(output)
    assert len(runs) == 1 and runs[0]["state"] == "succeeded"
    uid = runs[0]["uid"]
    code, output = _run(stack, t.team.token, "runs", "watch", uid, "--team", t.uid, "--after", "2", "--json")
    assert code == 0 and json.loads(output.splitlines()[0])["seq"] == 3
    code, output = _run(stack, t.team.token, "runs", "steer", uid, "more", "--team", t.uid)
    assert code == 1 and "conflict" in output
    code, output = _run(stack, t.team.token, "runs", "cancel", uid, "--team", t.uid, "--json")
    assert code == 0 and json.loads(output)["state"] == "succeeded"
    code, output = _run(stack, t.team.token, "runs", "get", uid, "--team", t.uid)
    assert code == 0 and uid in output
    wait_run(t.member, uid)


def test_runs_errors_are_shown_with_their_remediation(stack: Stack) -> None:
    t = run_team(stack, platform=0)
    code, output = _run(stack, t.team.token, "runs", "start", "hi", "--team", t.uid, "--model", "opus")
    assert code == 1 and "credits_exhausted" in output and "allowance" in output


def test_worker_help() -> None:
    result = runner.invoke(app, ["worker", "--help"])
    assert result.exit_code == 0 and "--concurrency" in result.output
