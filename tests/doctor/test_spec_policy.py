"""The product spec's own minimum permissions policy, exactly as written there, passes for a model routed
through a global inference profile (with a warning: it lacks bedrock:CountTokens, which the gateway calls for
count_tokens); and a correct setup passes every check, from the panel and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from doctor.doctor_support import admin_aws_env, api_doctor, check, cli_doctor, put_role, trust_for
from support.stack import Stack

SPEC = Path("/work/shared/reference/byollm-product-spec.md")

# Copied verbatim from the product spec ("Example: AWS Bedrock minimum IAM policy"), one line as it is there.
SPEC_MINIMUM_POLICY_TEXT = (
    '{  "Version": "2012-10-17",  "Statement": [    {      "Sid": "BedrockModelAccess",      "Effect": "Allow",'
    '      "Action": [        "bedrock:InvokeModel",        "bedrock:InvokeModelWithResponseStream"      ],'
    '      "Resource": [        "arn:aws:bedrock:*::foundation-model/*",'
    '        "arn:aws:bedrock:*:*:inference-profile/*",'
    '        "arn:aws:bedrock:*:*:application-inference-profile/*"      ]    }  ]}'
)


def _spec_policy() -> dict[str, Any]:
    policy = json.loads(SPEC_MINIMUM_POLICY_TEXT)
    assert isinstance(policy, dict)
    return policy


def test_the_copy_is_the_spec_text() -> None:
    if not SPEC.exists():
        pytest.skip("the product spec is not in this checkout")
    blocks = re.findall(r"```\n(\{.*?\})\n```", SPEC.read_text(), re.S)
    written = [b for b in blocks if "BedrockModelAccess" in b]
    assert written and all(b == SPEC_MINIMUM_POLICY_TEXT for b in written)


def test_spec_minimum_policy_passes_for_a_global_profile_model(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}, "claude-sonnet-4-6": {"bedrock": True}})
    policy = _spec_policy()
    role = put_role(stack, policy=policy)
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)

    # the panel: the spec's policy pasted, evaluated locally, for the global profiles (region-less ARN included)
    report = api_doctor(stack, team.uid, permissions_policy=policy)
    permissions = check(report, "team.permissions")
    assert permissions["status"] == "warn", permissions["detail"]
    assert "bedrock:CountTokens" in permissions["detail"] and "InvokeModel:" not in permissions["detail"]
    scope = report["inputs"]["scopes"][0]
    resources = {r for route in scope["routes"] for r in route["resources"]}
    assert "arn:aws:bedrock:::foundation-model/anthropic.claude-opus-4-7-v1:0" in resources
    assert any(r.endswith(":inference-profile/global.anthropic.claude-opus-4-7-v1:0") for r in resources)
    assert check(report, "team.prompt.claude-opus-4-7")["status"] == "pass"
    assert check(report, "team.prompt.claude-sonnet-4-6")["status"] == "pass"

    # the CLI: every check that reads AWS passes too, and the report says what it could not read
    creds = admin_aws_env(stack, monkeypatch, tmp_path)
    code, text = cli_doctor("--team", team.uid, "--json")
    report = json.loads(text)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert code == 0 and not failed, failed
    for cid in ("team.oidc_provider", "team.trust_policy", "models.claude-opus-4-7.account",
                "account.invocation_logging"):
        assert check(report, cid)["status"] == "pass", check(report, cid)
    assert check(report, "team.permissions")["status"] == "warn"  # CountTokens only
    assert report["invocation_logging"] == "enabled"
    log_check = check(report, "account.invocation_log")
    assert log_check["status"] == "skip" and "could not read CloudWatch Logs group" in log_check["detail"]
    assert not [c for c in report["checks"] if c["needs_cli"] and c["status"] == "skip"]
    # nothing secret in the report: no AWS credential, no token
    for secret in (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], stack.operator):
        assert secret not in text
    assert "eyJ" not in text  # no JWT

    code, text = cli_doctor("--team", team.uid)
    assert code == 0 and "all checks passed" in text and "invocation logging: enabled" in text
