"""Canary scan for runs: no credential, key or token value in run events, transcripts, logs, responses
or any table, after runs on Bedrock through web identity, on the direct route, with the shell tool
(printing its environment), steering, cancel and SSE watching.

Secrets: the operator's provider keys (CANARY values), byollm tokens (member, agent, operator), the
web-identity tokens byollm minted (read back from the simulator's STS journal), the temporary AWS
credentials the simulator issued for them, the key-encryption key, and a credential-shaped string a user
pasted into a prompt (which must be redacted before anything is stored).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.canary import LogRecords, canary_world, dump_database
from support.oidc_stack import make_role, minted_tokens, running_oidc_stack
from support.runs_stack import (
    RUN_SETTINGS,
    events,
    new_agent,
    run_team,
    sse,
    start_run,
    team_client,
    wait_event,
    wait_run,
)
from support.stack import KEK, Stack

CANARY_KEYS = {
    "anthropic": "sk-ant-CANARY0run0anthropic0000000000000001",
    "openai": "sk-CANARY0run0openai00000000000000000000001",
    "google": "AIzaCANARY0run0google000000000000000000001",
}
PASTED = "sk-ant-CANARY0pasted0by0a0user000000000000001"


def _world() -> dict[str, Any]:
    return canary_world({name: [key] for name, key in CANARY_KEYS.items()})



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("runs-canary")), world=_world(), **RUN_SETTINGS) as s:
        yield s


def test_no_secret_reaches_run_events_transcripts_logs_or_tables(
        stack: Stack, capfd: pytest.CaptureFixture[str]) -> None:
    records = LogRecords()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(str(dict(response.headers)))
        seen.append(response.text)

    try:
        t = run_team(stack)
        role = make_role(stack, subjects=[f"scoped_principal:{t.uid}/*"])
        t.team.bedrock(role_arn=role)
        agent_uid, agent_token = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
        member = httpx.Client(base_url=f"{stack.url}/api/v1/teams/{t.uid}", timeout=30,
                              headers={"authorization": f"Bearer {t.team.token}"}, event_hooks={"response": [keep]})
        # Bedrock via web identity, with the shell printing its environment and a pasted key in the prompt
        run = start_run(member, prompt=f'Use shell with command="env; echo {PASTED}" (my key is {PASTED})',
                        agent=agent_uid)
        assert wait_run(member, run["uid"])["state"] == "succeeded"
        sse(member, run["uid"])
        member.get(f"/runs/{run['uid']}/transcript")
        # steering and cancel
        slow = start_run(member, prompt='Use shell with command="sleep 30"', agent=agent_uid)
        wait_event(member, slow["uid"], "tool_call")
        member.post(f"/runs/{slow['uid']}/steer", json={"message": f"also this key {PASTED}"})
        member.post(f"/runs/{slow['uid']}/cancel")
        wait_run(member, slow["uid"])
        # the agent's own token, and a run on the direct route (operator key) after Bedrock is removed
        with team_client(stack, agent_token, t.uid) as agent:
            own = start_run(agent, prompt="agent run")
            wait_run(agent, own["uid"])
        t.team.bedrock(role_arn=None)
        direct = start_run(member, prompt="direct route please", model="opus")
        assert wait_run(member, direct["uid"])["state"] == "succeeded"
        member.get("/runs")
        outputs = [e["data"]["output"] for e in events(member, run["uid"]) if e["kind"] == "tool_result"]
        member.close()
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    captured = capfd.readouterr()

    # the shell ran with a minimal environment: nothing of byollm's (which holds the KEK) reached it
    assert outputs and "PATH=" in outputs[0] and "BYOLLM" not in outputs[0] and "[redacted]" in outputs[0]
    issued = list(stack.sim.state._session_keys.values())
    tokens = minted_tokens(stack)
    assert tokens and issued
    secrets: dict[str, str] = {
        "member_token": t.team.token, "agent_token": agent_token, "operator_token": stack.operator, "kek": KEK,
        "pasted": PASTED, **{f"operator_{k}": v for k, v in CANARY_KEYS.items()},
        **{f"web_identity_token_{i}": v for i, v in enumerate(tokens)},
        **{f"aws_secret_{i}": s.secret_access_key for i, s in enumerate(issued)},
        **{f"aws_session_token_{i}": s.session_token or "" for i, s in enumerate(issued)},
    }
    places = {
        "logs": "\n".join(records.lines), "stdout": captured.out, "stderr": captured.err,
        "responses": "\n".join(seen), "database": dump_database(stack),
    }
    hits = [(name, where) for name, value in secrets.items() if value
            for where, blob in places.items() if value in blob]
    assert hits == []
    assert "You said" in places["responses"] or "returned" in places["responses"]

