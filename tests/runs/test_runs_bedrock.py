"""Runs served by the team's own Bedrock through byollm's OIDC tokens (AssumeRoleWithWebIdentity against
the simulator's STS, which fetches byollm's discovery document and JWKS over HTTP, as IAM does)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from byollm.policy.ids import new_uid
from support.oidc_stack import make_role, minted_tokens, running_oidc_stack
from support.runs_stack import RUN_SETTINGS, events, ledger, new_agent, run_team, start_run, team_client, wait_run
from support.stack import Stack

BEDROCK_ONLY = {"claude-opus-4-7": {"bedrock": True}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("runs-bedrock")), **RUN_SETTINGS) as s:
        yield s


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _token_for(stack: Stack, run_uid: str) -> dict[str, Any]:
    matches = [c for c in map(_claims, minted_tokens(stack)) if c.get("byollm_run") == run_uid]
    assert matches, f"no web-identity token was minted for run {run_uid}"
    return matches[-1]




def test_a_run_uses_the_team_role_and_a_named_agent_its_override(stack: Stack) -> None:
    t = run_team(stack, models=BEDROCK_ONLY)
    team_role = make_role(stack, subjects=[f"scoped_principal:{t.uid}/*"])
    agent_role = make_role(stack, subjects=[f"scoped_principal:{t.uid}/*"])
    t.team.bedrock(role_arn=team_role)
    agent_uid, agent_token = new_agent(stack, t.uid, default_model="opus", role_arn_override=agent_role)

    run = start_run(t.member, prompt="hello bedrock", model="opus")
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "succeeded", events(t.member, run["uid"])
    call = next(e["data"] for e in events(t.member, run["uid"]) if e["kind"] == "model_call")
    assert call["route"].startswith("bedrock:") and call["fallbacks"] == 0
    assert call["assumed_role_arn"].startswith(team_role.replace(":iam::", ":sts::").replace(":role/",
                                                                                              ":assumed-role/"))
    claims = _token_for(stack, run["uid"])
    assert claims["sub"] == f"scoped_principal:{t.uid}/user:{t.member_uid}"

    # a member's run of the named agent: the agent's role, still the user's identity
    run = start_run(t.member, prompt="agent work", agent=agent_uid)
    assert wait_run(t.member, run["uid"])["state"] == "succeeded"
    call = next(e["data"] for e in events(t.member, run["uid"]) if e["kind"] == "model_call")
    assert agent_role.split("/")[-1] in call["assumed_role_arn"]
    claims = _token_for(stack, run["uid"])
    assert claims["sub"] == f"scoped_principal:{t.uid}/user:{t.member_uid}" and claims["byollm_agent"] == agent_uid

    # the agent's own token: actor service_account
    with team_client(stack, agent_token, t.uid) as agent:
        run = start_run(agent, prompt="scheduled")
        assert wait_run(agent, run["uid"])["state"] == "succeeded"
    assert _token_for(stack, run["uid"])["sub"] == f"scoped_principal:{t.uid}/service_account:{agent_uid}"

    # Bedrock served: no AI credits; the runs still paid platform and compute credits
    rows = ledger(stack, t.uid)
    assert not [r for r in rows if r["bucket"] == "ai_credits"]
    assert sum(Decimal(str(r["credits"])) for r in rows if r["bucket"] == "platform") == 3
    assert [r for r in rows if r["bucket"] == "compute"]
    deadline = time.monotonic() + 5  # the request log is written in batches, off the run's path
    while len(logged := [r for r in stack.request_log(t.uid) if r["run_uid"]]) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(logged) == 3 and {r["credential"] for r in logged} == {"web_identity"}
    assert {r["billing"] for r in logged} == {"customer_cloud"}


@pytest.mark.parametrize(("case", "code", "check"), [
    ("other_team", "role_assumption_failed", "scoped_principal:"),
    ("no_provider", "oidc_provider_missing", "OpenID Connect provider"),
])
def test_a_failed_exchange_is_in_the_runs_events_and_the_run_fails_over(
        stack: Stack, case: str, code: str, check: str) -> None:
    t = run_team(stack)  # Bedrock and the direct API both enabled
    if case == "other_team":
        role = make_role(stack, subjects=[f"scoped_principal:{new_uid()}/*"])
    else:
        role = "arn:aws:iam::999988887777:role/byollm-team"  # an account without byollm's OIDC provider
    t.team.bedrock(role_arn=role)
    run = start_run(t.member, prompt="fail over please", model="opus", max_turns=2)
    done = wait_run(t.member, run["uid"])
    assert done["state"] == "succeeded"
    all_events = events(t.member, run["uid"])
    failures = [e["data"] for e in all_events if e["kind"] == "web_identity_failure"]
    assert len(failures) == 1 and failures[0]["code"] == code
    assert failures[0]["remediation"] and check in failures[0]["message"]
    call = next(e["data"] for e in all_events if e["kind"] == "model_call")
    assert call["route"].startswith("anthropic:") and call["fallbacks"] == 1

    # Bedrock only: nothing to fail over to, the run fails with the exchange's class listed
    t2 = run_team(stack, models=BEDROCK_ONLY)
    t2.team.bedrock(role_arn=role)
    run = start_run(t2.member, prompt="no fallback", model="opus")
    done = wait_run(t2.member, run["uid"])
    assert done["state"] == "failed" and done["error_code"] == "no_fallback_available"
    route_failures = [e["data"] for e in events(t2.member, run["uid"]) if e["kind"] == "route_failure"]
    assert [f["code"] for f in route_failures] == [code]
    assert route_failures[0]["remediation"]
