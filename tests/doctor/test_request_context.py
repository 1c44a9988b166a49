"""The doctor evaluates policies with the request context AWS builds (aws:RequestedRegion, aws:PrincipalArn,
aws:CurrentTime, aws:SecureTransport, bedrock:InferenceProfileArn), so AWS's own documented least-privilege
policies pass and a Region allow-list without ``unspecified`` fails a ``global.`` route, in the panel's path
(a pasted policy, byollm's evaluator), the CLI's (SimulatePrincipalPolicy) and the test prompt (the simulator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from doctor.doctor_support import admin_aws_env, api_doctor, check, cli_doctor, put_role, trust_for
from support.stack import ACCOUNT, Stack

OPUS_FM = "anthropic.claude-opus-4-7-v1:0"
SONNET_FM = "anthropic.claude-sonnet-4-6-v1:0"
INVOKE = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
US = ("us-east-1", "us-east-2", "us-west-2")


def _count_tokens(*models: str) -> dict[str, Any]:
    return {"Sid": "CountTokens", "Effect": "Allow", "Action": "bedrock:CountTokens",
            "Resource": [f"arn:aws:bedrock:us-east-1::foundation-model/{m}" for m in models]}


def _documented(global_model: str, us_model: str) -> dict[str, Any]:
    """AWS's least-privilege policies from the Bedrock user guide: a global profile (the profile, the model in
    the source Region, the region-less model) and a geographic one (the profile, the model in each destination
    Region), the model statements conditioned on the profile; plus CountTokens, which the gateway calls."""
    glob = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/global.{global_model}"
    us = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{us_model}"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": INVOKE, "Resource": [glob, us]},
        {"Effect": "Allow", "Action": INVOKE,
         "Resource": [f"arn:aws:bedrock:us-east-1::foundation-model/{global_model}",
                      f"arn:aws:bedrock:::foundation-model/{global_model}"],
         "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": glob}}},
        {"Effect": "Allow", "Action": INVOKE,
         "Resource": [f"arn:aws:bedrock:{r}::foundation-model/{us_model}" for r in US],
         "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": us}}},
        _count_tokens(global_model, us_model)]}


def _team(stack: Stack, policy: dict[str, Any]) -> Any:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True},
                           "claude-sonnet-4-6": {"bedrock": True,
                                                 "inference_profile": f"us.{SONNET_FM}"}})
    role = put_role(stack, policy=policy)
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    return team, role


def test_awss_documented_policies_pass_the_doctor_and_the_simulator(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = _documented(OPUS_FM, SONNET_FM)
    team, _role = _team(stack, policy)
    report = api_doctor(stack, team.uid, permissions_policy=policy)
    assert check(report, "team.permissions")["status"] == "pass", check(report, "team.permissions")["detail"]
    assert check(report, "team.prompt.claude-opus-4-7")["status"] == "pass"  # the simulator agrees
    assert check(report, "team.prompt.claude-sonnet-4-6")["status"] == "pass"
    admin_aws_env(stack, monkeypatch, tmp_path)
    cli = json.loads(cli_doctor("--team", team.uid, "--json")[1])
    assert check(cli, "team.permissions")["status"] == "pass", check(cli, "team.permissions")["detail"]


def _with_region_list(regions: list[str]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": regions},
                       "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}}}]}


def test_a_region_allow_list_without_unspecified_fails_the_global_route(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = _with_region_list(list(US))
    team, _role = _team(stack, policy)
    report = api_doctor(stack, team.uid, permissions_policy=policy)
    permissions = check(report, "team.permissions")
    assert permissions["status"] == "fail"
    region_less = f"arn:aws:bedrock:::foundation-model/{OPUS_FM}"
    assert f"do not allow: {region_less} (bedrock:InvokeModel: not allowed (" in permissions["detail"]
    assert "StringEquals aws:RequestedRegion" in permissions["detail"] and "'unspecified'" in permissions["detail"]
    assert f"via us.{SONNET_FM}" not in permissions["detail"]  # the geographic route is fine
    prompt = check(report, "team.prompt.claude-opus-4-7")  # the simulator refuses the global call too
    assert prompt["status"] == "fail" and prompt["error_class"] == "insufficient_permissions"
    assert check(report, "team.prompt.claude-sonnet-4-6")["status"] == "pass"
    admin_aws_env(stack, monkeypatch, tmp_path)
    cli = json.loads(cli_doctor("--team", team.uid, "--json")[1])
    simulated = check(cli, "team.permissions")
    assert simulated["status"] == "fail" and f"{region_less} (bedrock:InvokeModel: implicitDeny" in simulated["detail"]


def test_a_region_allow_list_with_unspecified_passes(stack: Stack) -> None:
    policy = _with_region_list([*US, "unspecified"])
    team, _role = _team(stack, policy)
    report = api_doctor(stack, team.uid, permissions_policy=policy)
    assert check(report, "team.permissions")["status"] == "pass", check(report, "team.permissions")["detail"]
    assert check(report, "team.prompt.claude-opus-4-7")["status"] == "pass"
    # byollm calls AWS over TLS: a policy requiring aws:SecureTransport passes the local evaluation
    secure = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*",
                                                      "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
    assert check(api_doctor(stack, team.uid, permissions_policy=secure), "team.permissions")["status"] == "pass"


def test_time_bound_policies_are_judged_at_the_current_time(stack: Stack) -> None:
    now = datetime.now(UTC)
    expired = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:CurrentTime": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}}}]}
    team, _role = _team(stack, expired)
    permissions = check(api_doctor(stack, team.uid, permissions_policy=expired), "team.permissions")
    assert permissions["status"] == "fail" and "DateLessThan aws:CurrentTime" in permissions["detail"]
    valid = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:EpochTime": str(int((now + timedelta(days=1)).timestamp()))}}}]}
    assert check(api_doctor(stack, team.uid, permissions_policy=valid), "team.permissions")["status"] == "pass"
