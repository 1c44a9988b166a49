"""A run does not outlive the access that started it: removing a member, revoking one of their tokens or
demoting them stops the runs they started (queued ones at once, running ones at the worker's next check), and a
team admin cannot mint a token for somebody else to act as them.

Driven as the people involved would: the member starts runs with their own token over the runs API, the admin
changes their access over the admin API, and the run's final state and events are read back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from support.runs_stack import RunTeam, events, run_team, start_run, team_client, wait_run
from support.stack import Stack

SLOW_MODEL = "claude-haiku-4-5"
SLOW_UPSTREAM_ID = "claude-haiku-4-5-20251001"


@pytest.fixture
def slow_upstream(stack: Stack) -> Iterator[None]:
    """The member's runs sit in a model call long enough to be stopped mid-flight."""
    r = stack.sim_http.put("/_sim/behaviour", json={"time_to_first_token_s": 20, "model": SLOW_UPSTREAM_ID})
    assert r.status_code in (200, 204), r.text
    yield
    stack.sim_http.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "model": SLOW_UPSTREAM_ID})


def _running(t: RunTeam, prompt: str) -> str:
    run = start_run(t.member, prompt=prompt, model=SLOW_MODEL)
    wait_run(t.admin, run["uid"], states={"running"}, timeout=20)
    return str(run["uid"])


def _stopped(t: RunTeam, run_uid: str, reason: str) -> None:
    begun = time.monotonic()
    done = wait_run(t.admin, run_uid, timeout=15)
    assert done["state"] == "cancelled", done
    assert time.monotonic() - begun < 10  # stopped mid-call, not after the 20 s answer
    withdrawn = [e for e in events(t.admin, run_uid) if e["kind"] == "cancel_requested"]
    assert withdrawn and reason in withdrawn[0]["data"]["reason"]


def test_removing_a_member_cancels_their_running_and_queued_runs(stack: Stack, slow_upstream: None) -> None:
    t = run_team(stack)
    running = _running(t, "a long task")
    queued = [start_run(t.member, prompt=f"queued {i}", model=SLOW_MODEL)["uid"] for i in range(4)]
    r = t.admin.delete(f"/members/{t.member_uid}")
    assert r.status_code == 204, r.text
    _stopped(t, running, "removed")
    for uid in queued:
        assert wait_run(t.admin, uid, timeout=15)["state"] == "cancelled"


def test_revoking_a_members_token_cancels_their_runs(stack: Stack, slow_upstream: None) -> None:
    t = run_team(stack)
    running = _running(t, "a long task")
    [token] = [tok for tok in t.admin.get("/tokens").json()
               if tok["principal_uid"] == t.member_uid and tok["name"] == "dev"]  # the one the member uses
    assert t.admin.delete(f"/tokens/{token['uid']}").status_code == 204
    _stopped(t, running, "revoked")


def test_demoting_an_admin_cancels_their_runs(stack: Stack, slow_upstream: None) -> None:
    t = run_team(stack)
    assert t.admin.patch(f"/members/{t.member_uid}", json={"role": "admin"}).status_code == 200
    running = _running(t, "a long task")
    assert t.admin.patch(f"/members/{t.member_uid}", json={"role": "member"}).status_code == 200
    _stopped(t, running, "demoted")


def test_runs_of_other_members_keep_running(stack: Stack) -> None:
    t = run_team(stack)
    other = t.admin.post("/members", json={"email": f"other-{time.monotonic_ns()}@example.test"})
    assert other.status_code == 201, other.text
    run = start_run(t.member, prompt="hello", model=SLOW_MODEL)
    assert t.admin.delete(f"/members/{other.json()['user_uid']}").status_code == 204
    assert wait_run(t.admin, run["uid"])["state"] == "succeeded"


def test_a_team_admin_cannot_issue_a_token_for_anyone_else(stack: Stack) -> None:
    t = run_team(stack)
    # the member becomes an admin of the team: the attacker in this test
    assert t.admin.patch(f"/members/{t.member_uid}", json={"role": "admin"}).status_code == 200
    me = httpx.get(f"{stack.url}/api/v1/me", headers={"authorization": f"Bearer {stack.operator}"}).json()
    operator_uid = me["principal_uid"]
    colleague = t.admin.post("/members", json={"email": f"colleague-{time.monotonic_ns()}@example.test"}).json()
    for victim in (operator_uid, colleague["user_uid"]):
        r = t.member.post("/tokens", json={"name": "steal", "user_uid": victim})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    audit = t.admin.get("/audit").json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert not any(e["action"] == "token.issue" and (e.get("after") or {}).get("name") == "steal" for e in entries)
    # for themselves and for the team's agents it works
    assert t.member.post("/tokens", json={"name": "mine"}).status_code == 201
    agent = t.admin.post("/agents", json={"name": f"bot-{time.monotonic_ns()}", "tools": []})
    assert agent.status_code == 201, agent.text
    assert t.member.post("/tokens", json={"name": "bot", "agent_uid": agent.json()["uid"]}).status_code == 201


def test_an_agent_of_another_team_gets_no_token(stack: Stack) -> None:
    a, b = run_team(stack), run_team(stack)
    agent = b.admin.post("/agents", json={"name": f"bot-{time.monotonic_ns()}", "tools": []}).json()
    r = a.admin.post("/tokens", json={"name": "x", "agent_uid": agent["uid"]})
    assert r.status_code == 404, r.text


def test_a_new_person_gets_their_first_token_with_the_invitation(stack: Stack) -> None:
    t = run_team(stack)
    invited = t.admin.post("/members", json={"email": f"new-{time.monotonic_ns()}@example.test"})
    assert invited.status_code == 201, invited.text
    first = invited.json()["first_token"]
    assert first["token"].startswith("byo_") and first["details"]["principal_uid"] == invited.json()["user_uid"]
    own = team_client(stack, first["token"], t.uid)
    assert own.post("/tokens", json={"name": "laptop"}).status_code == 201  # they issue the next ones themselves
    # someone byollm knows already keeps their own tokens: the invitation carries none
    again = t.admin.post("/members", json={"email": invited.json()["email"]})
    assert again.status_code == 409
    other_team = run_team(stack)
    known = other_team.admin.post("/members", json={"email": invited.json()["email"]})
    assert known.status_code == 201 and known.json()["first_token"] is None
