"""Runs end to end on the direct route: success, SSE and resume, the shell tool loop, steering, cancel."""

from __future__ import annotations

import time

import httpx

from support.runs_stack import (
    events,
    new_agent,
    run_log_rows,
    run_team,
    sse,
    start_run,
    team_client,
    wait_event,
    wait_run,
)
from support.stack import Stack

SLOW_MODEL = "claude-haiku-4-5"
SLOW_UPSTREAM_ID = "claude-haiku-4-5-20251001"  # the direct Anthropic id the simulator sees


def _slow(stack: Stack, seconds: float) -> None:
    r = stack.sim_http.put("/_sim/behaviour", json={"time_to_first_token_s": seconds, "model": SLOW_UPSTREAM_ID})
    assert r.status_code in (200, 204), r.text


def test_a_run_succeeds_on_the_direct_route_and_records_its_transcript(stack: Stack) -> None:
    t = run_team(stack)
    run = start_run(t.member, prompt="hello from a cloud run", model="claude-opus-4-7")
    assert run["state"] == "queued" and run["actor_kind"] == "user_run" and run["started_by_uid"] == t.member_uid
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "succeeded", done
    assert done["turns"] == 1 and done["attempts"] == 1 and done["error_code"] is None
    kinds = [e["kind"] for e in events(t.member, run["uid"])]
    assert kinds[:3] == ["state", "prompt", "credits"] and kinds[-1] == "state"
    call = wait_event(t.member, run["uid"], "model_call")
    assert call["data"]["route"].startswith("anthropic:") and call["data"]["model"] == "claude-opus-4-7"
    message = wait_event(t.member, run["uid"], "message")
    assert "You said: hello from a cloud run" in message["data"]["text"]
    transcript = t.member.get(f"/runs/{run['uid']}/transcript").json()
    assert [m["role"] for m in transcript] == ["user", "assistant"]
    # the gateway's request log carries the run's model call, tied to the run
    rows = run_log_rows(stack, t.uid, run["uid"])
    assert len(rows) == 1 and rows[0]["principal_uid"] == t.member_uid and rows[0]["status"] == 200


def test_sse_streams_every_event_until_the_end_and_resumes_after_last_event_id(stack: Stack) -> None:
    t = run_team(stack)
    run = start_run(t.member, prompt="stream me", model="sonnet")
    streamed = sse(t.member, run["uid"])
    ids = [i for i, _, _ in streamed]
    assert ids == list(range(1, len(ids) + 1))
    assert streamed[-1][1] == "state" and streamed[-1][2]["data"]["state"] == "succeeded"
    resumed = sse(t.member, run["uid"], last_event_id=3)
    assert [i for i, _, _ in resumed] == ids[3:]
    assert [e["seq"] for e in events(t.member, run["uid"], after=2)] == ids[2:]


def test_the_shell_tool_loop_runs_in_the_runs_directory(stack: Stack) -> None:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="claude-opus-4-7")
    run = start_run(t.member, prompt='Use shell with command="echo hello > f.txt; cat f.txt; pwd"', agent=agent_uid)
    assert run["tools"] == ["shell"] and run["agent_uid"] == agent_uid and run["model"] == "claude-opus-4-7"
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "succeeded", done
    assert done["turns"] == 2
    result = wait_event(t.member, run["uid"], "tool_result")
    assert result["data"]["is_error"] is False
    assert result["data"]["output"] == "hello\n/workspace\n"
    final = [e for e in events(t.member, run["uid"]) if e["kind"] == "message"][-1]
    assert "shell returned: hello" in final["data"]["text"]
    assert not list(stack.settings.run_workdir_root.glob(f"{run['uid']}*"))  # removed when the run ended
    assert not (stack.settings.data_dir / "runs").exists()  # never inside the data directory


def test_tools_are_off_unless_enabled(stack: Stack) -> None:
    t = run_team(stack)
    # a user-triggered run may not ask for the shell (the operator enabled no tools for such runs)
    r = t.member.post("/runs", json={"prompt": "x", "model": "opus", "tools": ["shell"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # an agent without the shell tool may not either; an unknown tool is invalid
    plain_uid, _ = new_agent(stack, t.uid, default_model="opus")
    r = t.member.post("/runs", json={"prompt": "x", "agent": plain_uid, "tools": ["shell"]})
    assert r.status_code == 403
    r = t.member.post("/runs", json={"prompt": "x", "model": "opus", "tools": ["rm-rf"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    # without the tool the model is never offered it: it answers in text and nothing runs
    run = start_run(t.member, prompt='Use shell with command="touch /tmp/x"', agent=plain_uid)
    assert run["tools"] == []
    assert wait_run(t.member, run["uid"])["state"] == "succeeded"
    assert not [e for e in events(t.member, run["uid"]) if e["kind"] in ("tool_call", "tool_result")]


def test_steering_a_running_run_adds_a_user_turn(stack: Stack) -> None:
    t = run_team(stack)
    _slow(stack, 1.5)
    try:
        run = start_run(t.member, prompt="first question", model=SLOW_MODEL)
        wait_event(t.member, run["uid"], "state", state="running")
        r = t.member.post(f"/runs/{run['uid']}/steer", json={"message": "second question"})
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "steer"
        done = wait_run(t.member, run["uid"])
    finally:
        _slow(stack, 0)
    assert done["state"] == "succeeded" and done["turns"] == 2
    texts = [e["data"]["text"] for e in events(t.member, run["uid"]) if e["kind"] == "message"]
    assert "You said: first question" in texts[0] and "You said: second question" in texts[1]
    transcript = t.member.get(f"/runs/{run['uid']}/transcript").json()
    assert [m["role"] for m in transcript] == ["user", "assistant", "user", "assistant"]
    # a finished run cannot be steered
    r = t.member.post(f"/runs/{run['uid']}/steer", json={"message": "too late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_cancel_stops_a_running_run_and_its_tool(stack: Stack) -> None:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
    run = start_run(t.member, prompt='Use shell with command="sleep 30"', agent=agent_uid)
    wait_event(t.member, run["uid"], "tool_call")
    begun = time.monotonic()
    r = t.member.post(f"/runs/{run['uid']}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    done = wait_run(t.member, run["uid"], timeout=10)
    assert done["state"] == "cancelled" and time.monotonic() - begun < 5
    kinds = [e["kind"] for e in events(t.member, run["uid"])]
    assert "cancel_requested" in kinds and kinds[-1] == "state"
    # cancelling again changes nothing
    again = t.member.post(f"/runs/{run['uid']}/cancel").json()
    assert again["state"] == "cancelled"


def test_cancel_of_a_queued_run_is_immediate(stack: Stack) -> None:
    t = run_team(stack)
    _slow(stack, 1.0)
    try:
        # fill the embedded worker's slots (concurrency 4), then queue one more and cancel it
        busy = [start_run(t.member, prompt=f"busy {i}", model=SLOW_MODEL) for i in range(4)]
        extra = start_run(t.member, prompt="never runs", model=SLOW_MODEL)
        cancelled = t.member.post(f"/runs/{extra['uid']}/cancel").json()
        for b in busy:
            wait_run(t.member, b["uid"])
    finally:
        _slow(stack, 0)
    final = wait_run(t.member, extra["uid"])
    assert final["state"] == "cancelled"
    if cancelled["state"] == "cancelled":  # it was still queued (the usual case): it never started
        assert final["attempts"] == 0 and "model_call" not in [e["kind"] for e in events(t.member, extra["uid"])]


def test_a_run_with_no_route_fails_with_the_taxonomy_class(stack: Stack) -> None:
    t = run_team(stack, models={"claude-opus-4-7": {"direct": True}})
    stack.fault(service="anthropic", error="authentication_error", count=5)
    run = start_run(t.member, prompt="hi", model="claude-opus-4-7")
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "failed" and done["error_code"] == "no_fallback_available"
    assert done["remediation"]
    failures = [e for e in events(t.member, run["uid"]) if e["kind"] == "route_failure"]
    assert failures and failures[0]["data"]["code"] == "provider_key_rejected"
    end = events(t.member, run["uid"])[-1]["data"]
    assert end["state"] == "failed" and end["code"] == "no_fallback_available" and end["remediation"]


def test_a_named_agents_token_starts_runs_of_that_agent(stack: Stack) -> None:
    t = run_team(stack)
    agent_uid, token = new_agent(stack, t.uid, default_model="sonnet")
    with team_client(stack, token, t.uid) as agent:
        run = start_run(agent, prompt="scheduled work")
        assert run["actor_kind"] == "agent_run" and run["started_by_type"] == "agent"
        assert run["agent_uid"] == agent_uid and run["started_by_uid"] == agent_uid
        assert wait_run(agent, run["uid"])["state"] == "succeeded"
        other_uid, _ = new_agent(stack, t.uid, default_model="sonnet")
        r = agent.post("/runs", json={"prompt": "x", "agent": other_uid})
        assert r.status_code == 403
    rows = run_log_rows(stack, t.uid, run["uid"])
    assert rows and rows[0]["principal_type"] == "agent"


def test_a_run_takes_the_teams_aliases_and_newer_claude_names(stack: Stack) -> None:
    t = run_team(stack)
    assert start_run(t.member, prompt="x", model="claude-opus-4-8")["model"] == "claude-opus-4-7"  # family mapping
    t.team.policy(aliases=[{"pattern": "nightly-*", "target": "claude-haiku-4-5"}])
    assert start_run(t.member, prompt="x", model="nightly-big")["model"] == "claude-haiku-4-5"


def test_unknown_run_and_bad_input(stack: Stack) -> None:
    t = run_team(stack)
    assert t.member.get("/runs/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    r = t.member.post("/runs", json={"prompt": "x", "model": "no-such-model"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = t.member.post("/runs", json={"prompt": "x"})
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]
    r = httpx.get(f"{stack.url}/api/v1/teams/{t.uid}/runs", timeout=5)
    assert r.status_code == 401
