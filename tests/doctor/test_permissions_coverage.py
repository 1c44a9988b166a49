"""Issue 16 item 6: enabling a model that the last validated permissions policy does not cover warns on save.

The doctor passes the team's permissions with the generated least-privilege policy pasted (the panel's path);
enabling another model on Bedrock afterwards answers with a warning naming the model and the doctor (admin
API field, and a line from ``byollm admin policy set-model``); a model the policy covers, or a wildcard policy,
saves without one.
"""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from byollm.cli.main import app
from doctor.doctor_support import api_doctor, check, put_role, trust_for
from support.stack import Stack

OPUS, SONNET = "claude-opus-4-7", "claude-sonnet-4-6"
WILDCARD: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream",
                                  "bedrock:CountTokens"],
    "Resource": ["arn:aws:bedrock:*::foundation-model/*", "arn:aws:bedrock:*:*:inference-profile/*",
                 "arn:aws:bedrock:*:*:application-inference-profile/*"]}]}


def _validated_team(stack: Stack, policy: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    team = stack.new_team({OPUS: {"bedrock": True}})
    role = put_role(stack, policy=policy or {"Version": "2012-10-17", "Statement": []})
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    if policy is None:  # the generated least-privilege policy for today's models (Opus only)
        r = stack.admin.get(f"/teams/{team.uid}/iam/permissions-policy", params={"format": "json"})
        assert r.status_code == 200, r.text
        policy = dict(r.json()["document"])
    report = api_doctor(stack, team.uid, permissions_policy=policy)
    assert check(report, "team.permissions")["status"] == "pass"
    return team, policy


def test_enabling_a_model_outside_the_validated_policy_warns_and_names_the_doctor(stack: Stack) -> None:
    team, _ = _validated_team(stack)
    saved = team.policy(models={SONNET: {"bedrock": True}})
    (warning,) = saved["warnings"]
    assert warning.startswith(f"{SONNET}: the permissions policy validated on")
    assert "pasted document" in warning and "byollm doctor" in warning
    assert saved["models"] and any(m["model"] == SONNET and m["bedrock"] for m in saved["models"])  # still saved

    # re-saving a covered model (Opus) warns about nothing
    assert team.policy(models={OPUS: {"bedrock": True, "direct": True}}).get("warnings") == []

    # the CLI prints the warning on its own line
    result = CliRunner().invoke(app, ["admin", "policy", "set-model", "--team", team.uid, "claude-haiku-4-5",
                                      "--bedrock", "--url", stack.url, "--token", stack.operator])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: claude-haiku-4-5: the permissions policy validated on" in text and "byollm doctor" in text


def test_a_wildcard_policy_covers_every_model(stack: Stack) -> None:
    team, _ = _validated_team(stack, WILDCARD)
    assert team.policy(models={SONNET: {"bedrock": True}, "claude-haiku-4-5": {"bedrock": True}})["warnings"] == []


def test_without_any_validation_enabling_a_bedrock_model_points_at_the_doctor(stack: Stack) -> None:
    team = stack.new_team({OPUS: {"direct": True}})
    (warning,) = team.policy(models={OPUS: {"bedrock": True, "direct": True}})["warnings"]
    assert "no permissions policy has been validated for this team yet" in warning and "byollm doctor" in warning
