"""Who may start, see, watch, steer and cancel runs, over real HTTP."""

from __future__ import annotations

from support.runs_stack import member_token, new_agent, run_team, start_run, team_client, wait_run
from support.stack import Stack


def test_run_endpoints_per_role(stack: Stack) -> None:
    t = run_team(stack)
    other = run_team(stack)  # another team entirely
    _, peer_token = member_token(stack, t.uid)
    _, admin_token = member_token(stack, t.uid, role="admin")
    run = start_run(t.member, prompt="mine", model="opus")
    uid = run["uid"]
    wait_run(t.member, uid)
    peer = team_client(stack, peer_token, t.uid)
    admin = team_client(stack, admin_token, t.uid)
    outsider = team_client(stack, other.team.token, t.uid)
    _, agent_token = new_agent(stack, t.uid, default_model="opus")
    agent = team_client(stack, agent_token, t.uid)
    _, foreign_agent_token = new_agent(stack, other.uid, default_model="opus")
    foreign_agent = team_client(stack, foreign_agent_token, t.uid)

    # the starter and the team's admins see, watch, steer and cancel; nobody else learns the run exists
    for client in (t.member, admin):
        assert client.get(f"/runs/{uid}").status_code == 200
        assert client.get(f"/runs/{uid}/events", headers={"accept": "application/json"}).status_code == 200
        assert client.get(f"/runs/{uid}/transcript").status_code == 200
        assert client.post(f"/runs/{uid}/steer", json={"message": "m"}).status_code == 409  # ended: but allowed
        assert client.post(f"/runs/{uid}/cancel").status_code == 200
    for client in (peer, agent):
        assert client.get(f"/runs/{uid}").status_code == 404
        assert client.get(f"/runs/{uid}/events").status_code == 404
        assert client.get(f"/runs/{uid}/transcript").status_code == 404
        assert client.post(f"/runs/{uid}/steer", json={"message": "m"}).status_code == 404
        assert client.post(f"/runs/{uid}/cancel").status_code == 404
    for client in (outsider, foreign_agent):
        assert client.get("/runs").status_code == 404
        assert client.get(f"/runs/{uid}").status_code == 404
        assert client.post("/runs", json={"prompt": "x", "model": "opus"}).status_code == 404

    # listing: admins see every run of the team, members and agents their own
    peer_run = start_run(peer, prompt="peer's", model="opus")
    agent_run = start_run(agent, prompt="agent's")
    listed = {r["uid"] for r in admin.get("/runs").json()}
    assert {uid, peer_run["uid"], agent_run["uid"]} <= listed
    assert {r["uid"] for r in peer.get("/runs").json()} == {peer_run["uid"]}
    assert {r["uid"] for r in t.member.get("/runs").json()} == {uid}
    assert {r["uid"] for r in agent.get("/runs").json()} == {agent_run["uid"]}
    assert agent.get(f"/runs/{agent_run['uid']}").status_code == 200
    assert admin.get("/runs", params={"state": "succeeded"}).status_code == 200
    for c in (peer, admin, outsider, agent, foreign_agent):
        c.close()
