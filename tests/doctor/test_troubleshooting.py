"""One test per misconfiguration class of the product spec's troubleshooting list, each asserting the named
condition or resource and the remediation, through the panel's path (the API, pasted documents) or the
admin's path (the CLI reading the simulator's IAM and Bedrock with the admin's own AWS credentials)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from byollm.errors import ErrorClass
from doctor.doctor_support import admin_aws_env, api_doctor, check, cli_doctor, issuer_host, put_role, trust_for
from support.oidc_stack import INVOKE_POLICY, make_role
from support.runs_stack import new_agent
from support.stack import ACCOUNT, Stack

OPUS_FM = "anthropic.claude-opus-4-7-v1:0"
OPUS_GLOBAL = f"global.{OPUS_FM}"
BEDROCK_OPUS = {"claude-opus-4-7": {"bedrock": True}}

ROLE_ASSUMPTION = ErrorClass.ROLE_ASSUMPTION_FAILED.remediation


def _fixes_complete(found: dict[str, Any]) -> None:
    assert set(found["fixes"]) == {"json", "terraform", "cloudformation"}
    assert all(found["fixes"].values())


# --- role assumption failed -----------------------------------------------------------------------------------


def test_trust_policy_pinned_to_another_team_names_the_sub_condition(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    role = make_role(stack, subjects=["scoped_principal:SomeOtherTeamUid0000001/*"])
    team.bedrock(role_arn=role)
    host = issuer_host(stack)

    # the admin's path: the CLI reads the trust policy with GetRole and evaluates it locally
    admin_aws_env(stack, monkeypatch, tmp_path)
    code, _text = cli_doctor("--team", team.uid, "--json")
    report = json.loads(_text)
    assert code == 1
    trust = check(report, "team.trust_policy")
    assert trust["status"] == "fail" and trust["error_class"] == "role_assumption_failed"
    assert f"StringLike {host}:sub = 'scoped_principal:SomeOtherTeamUid0000001/*'" in trust["detail"]
    assert f"is false for {host}:sub = 'scoped_principal:{team.uid}/user:" in trust["detail"]
    assert "GetRole" in trust["detail"] and trust["remediation"] == ROLE_ASSUMPTION
    _fixes_complete(trust)
    assert f"scoped_principal:{team.uid}/*" in trust["fixes"]["json"]
    assert 'resource "aws_iam_role"' in trust["fixes"]["terraform"]
    assert "AWS::IAM::Role" in trust["fixes"]["cloudformation"]

    # the test prompt through the role, with byollm's own token, fails the same way at STS
    prompt = check(report, "team.prompt.claude-opus-4-7")
    assert prompt["status"] == "fail" and prompt["error_class"] == "role_assumption_failed"
    assert role in prompt["detail"] and prompt["fixes"]["json"] == trust["fixes"]["json"]

    # the human rendering names the condition and prints the fix in the asked format
    code, text = cli_doctor("--team", team.uid, "--fix-format", "terraform")
    flat = " ".join(text.split())
    assert code == 1
    assert "✗ Trust policy admits byollm's tokens (team.trust_policy)" in flat
    assert f"StringLike {host}:sub" in flat and "error class: role_assumption_failed" in flat
    assert 'resource "aws_iam_role"' in text


def test_trust_policy_with_the_wrong_audience_names_the_aud_condition(stack: Stack) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    host = issuer_host(stack)
    pasted = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:aud": "api://byollm"},
                      "StringLike": {f"{host}:sub": f"scoped_principal:{team.uid}/*"}}}]}

    # the panel's path: a pasted trust policy, evaluated on the server with IAM's condition semantics
    report = api_doctor(stack, team.uid, trust_policy=pasted)
    trust = check(report, "team.trust_policy")
    assert trust["status"] == "fail" and trust["error_class"] == "role_assumption_failed"
    assert f"StringEquals {host}:aud = 'api://byollm' is false for {host}:aud = 'sts.amazonaws.com'" in trust["detail"]
    assert "pasted document" in trust["detail"] and trust["remediation"] == ROLE_ASSUMPTION
    _fixes_complete(trust)
    assert '"sts.amazonaws.com"' in trust["fixes"]["json"]
    # the panel holds no AWS credentials: what only the CLI can read is marked so
    assert check(report, "team.oidc_provider")["needs_cli"] is True
    assert "team.oidc_provider" in report["needs_cli"] and "team.trust_policy" not in report["needs_cli"]


def test_trust_policy_for_the_wrong_issuer_host_names_the_principal_and_the_keys(stack: Stack) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    host = issuer_host(stack)
    pasted = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/app.warp.dev"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {"app.warp.dev:sub": f"scoped_principal:{team.uid}/*"},
                      "StringEquals": {"app.warp.dev:aud": "sts.amazonaws.com"}}}]}
    trust = check(api_doctor(stack, team.uid, trust_policy=pasted), "team.trust_policy")
    assert trust["status"] == "fail" and trust["error_class"] == "role_assumption_failed"
    assert (f"Principal is Federated: arn:aws:iam::{ACCOUNT}:oidc-provider/app.warp.dev, not Federated:"
            f" arn:aws:iam::{ACCOUNT}:oidc-provider/{host}") in trust["detail"]
    assert f"StringLike app.warp.dev:sub = 'scoped_principal:{team.uid}/*' is false: the request has no" \
           " app.warp.dev:sub" in trust["detail"]
    assert trust["remediation"] == ROLE_ASSUMPTION
    assert f"oidc-provider/{host}" in trust["fixes"]["json"]


# --- missing OIDC provider --------------------------------------------------------------------------------------


def test_missing_oidc_provider_is_named_by_the_cli_and_by_the_test_prompt(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    host = issuer_host(stack)
    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
    r = stack.sim_http.delete(f"/_sim/accounts/{ACCOUNT}/oidc-providers", params={"url": stack.url})
    assert r.status_code == 200, r.text
    try:
        admin_aws_env(stack, monkeypatch, tmp_path)
        code, text = cli_doctor("--team", team.uid, "--json")
        report = json.loads(text)
        assert code == 1
        provider = check(report, "team.oidc_provider")
        assert provider["status"] == "fail" and provider["error_class"] == "oidc_provider_missing"
        assert f"no IAM OpenID Connect provider {provider_arn} exists for issuer {stack.url}" in provider["detail"]
        assert provider["remediation"] == ErrorClass.OIDC_PROVIDER_MISSING.remediation
        _fixes_complete(provider)
        assert f'"Url": "{stack.url}"' in provider["fixes"]["json"]
        assert "aws_iam_openid_connect_provider" in provider["fixes"]["terraform"]
        prompt = check(report, "team.prompt.claude-opus-4-7")
        assert prompt["error_class"] == "oidc_provider_missing" and host in prompt["detail"]

        # a provider that exists but lacks byollm's audience
        stack.sim_http.post(f"/_sim/accounts/{ACCOUNT}/oidc-providers",
                            json={"url": stack.url, "client_ids": ["api://something-else"]})
        report = json.loads(cli_doctor("--team", team.uid, "--json")[1])
        provider = check(report, "team.oidc_provider")
        assert provider["status"] == "fail" and provider["error_class"] == "oidc_provider_missing"
        assert "does not list the audience sts.amazonaws.com (its client IDs: api://something-else)" \
            in provider["detail"]
    finally:
        stack.sim_http.delete(f"/_sim/accounts/{ACCOUNT}/oidc-providers", params={"url": stack.url})
        make_role(stack, subjects=["scoped_principal:restore/*"])  # registers the provider again


# --- insufficient permissions -----------------------------------------------------------------------------------


OPUS_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-central-1", "eu-west-1", "eu-west-3", "ap-northeast-1",
                "ap-southeast-2")
REGIONAL_ONLY: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream",
                                  "bedrock:CountTokens"],
    "Resource": [*(f"arn:aws:bedrock:{r}::foundation-model/{OPUS_FM}" for r in OPUS_REGIONS),
                 f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/*"]}]}


def test_global_profile_without_the_region_less_arn_names_that_resource(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    role = put_role(stack, policy=REGIONAL_ONLY)
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    region_less = f"arn:aws:bedrock:::foundation-model/{OPUS_FM}"
    remediation = ErrorClass.INSUFFICIENT_PERMISSIONS.remediation

    # the panel: the pasted policy, evaluated locally
    report = api_doctor(stack, team.uid, permissions_policy=REGIONAL_ONLY)
    permissions = check(report, "team.permissions")
    assert permissions["status"] == "fail" and permissions["error_class"] == "insufficient_permissions"
    assert f"do not allow: {region_less} (bedrock:InvokeModel: not allowed," in permissions["detail"]
    assert f"needed by claude-opus-4-7 via {OPUS_GLOBAL}" in permissions["detail"]
    assert "us-east-1::foundation-model" not in permissions["detail"]  # only the missing resource is named
    assert permissions["remediation"] == remediation
    assert region_less in permissions["fixes"]["json"] and "aws_iam_role_policy" in permissions["fixes"]["terraform"]
    # the test prompt hits the same wall in the (simulated) account
    prompt = check(report, "team.prompt.claude-opus-4-7")
    assert prompt["status"] == "fail" and prompt["error_class"] == "insufficient_permissions"

    # the CLI: SimulatePrincipalPolicy on the role, with the admin's credentials
    admin_aws_env(stack, monkeypatch, tmp_path)
    report = json.loads(cli_doctor("--team", team.uid, "--json")[1])
    permissions = check(report, "team.permissions")
    assert permissions["status"] == "fail" and "SimulatePrincipalPolicy" in permissions["detail"]
    assert f"do not allow: {region_less} (bedrock:InvokeModel: implicitDeny" in permissions["detail"]
    assert permissions["remediation"] == remediation
    assert check(report, "team.trust_policy")["status"] == "pass"
    assert check(report, "team.oidc_provider")["status"] == "pass"


def test_model_access_never_granted_fails_the_test_prompt_naming_the_model(stack: Stack) -> None:
    other = "444455556666"  # this account granted model access to Haiku only
    team = stack.new_team(BEDROCK_OPUS)
    role = put_role(stack, policy=INVOKE_POLICY | {"Statement": [{
        "Effect": "Allow", "Action": "bedrock:Invoke*", "Resource": "*"}]}, account=other)
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"], account=other)
    team.bedrock(role_arn=role)
    report = api_doctor(stack, team.uid)
    prompt = check(report, "team.prompt.claude-opus-4-7")
    assert prompt["status"] == "fail" and prompt["error_class"] == "insufficient_permissions"
    assert f"claude-opus-4-7 via {OPUS_GLOBAL} with role {role}" in prompt["detail"]
    assert "model access" in prompt["remediation"]
    assert prompt["remediation"] == ErrorClass.INSUFFICIENT_PERMISSIONS.remediation
    assert "aws_iam_role_policy" in prompt["fixes"]["terraform"]


# --- region or model mismatch -----------------------------------------------------------------------------------


def test_model_not_offered_in_the_teams_region(stack: Stack) -> None:
    team = stack.new_team(BEDROCK_OPUS | {"claude-haiku-4-5": {"bedrock": True}}, region="eu-north-1")
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    report = api_doctor(stack, team.uid)
    region = check(report, "models.claude-opus-4-7.region")
    assert region["status"] == "fail" and region["error_class"] == "region_model_mismatch"
    assert "claude-opus-4-7 is not offered on Bedrock in eu-north-1; it is in" in region["detail"]
    assert region["remediation"] == ErrorClass.REGION_MODEL_MISMATCH.remediation
    assert check(report, "models.claude-haiku-4-5.region")["status"] == "pass"
    assert check(report, "team.prompt.claude-haiku-4-5")["status"] == "pass"


def test_agent_default_model_not_enabled_for_bedrock(stack: Stack) -> None:
    team = stack.new_team(BEDROCK_OPUS | {"claude-sonnet-4-6": {"direct": True}})
    team_role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    agent_role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=team_role)
    agent_uid, _ = new_agent(stack, team.uid, default_model="claude-sonnet-4-6", role_arn_override=agent_role)
    name = next(a["name"] for a in stack.admin.get(f"/teams/{team.uid}/agents").json() if a["uid"] == agent_uid)
    report = api_doctor(stack, team.uid)
    default = check(report, f"agent:{name}.default_model")
    assert default["status"] == "fail" and default["error_class"] == "region_model_mismatch"
    assert (f"agent {name} runs on Bedrock (role {agent_role}) but its default model claude-sonnet-4-6 is not"
            " enabled for Bedrock") in default["detail"]
    assert default["remediation"] == ErrorClass.REGION_MODEL_MISMATCH.remediation
    # the agent's override role is checked on its own, with the agent's own sub
    assert check(report, f"agent:{name}.prompt.claude-opus-4-7")["status"] == "pass"
    assert check(report, f"agent:{name}.role")["detail"].endswith(agent_role)

    # --agent focuses on that agent
    focused = api_doctor(stack, team.uid, agent=name)
    assert focused["agent_uid"] == agent_uid
    assert {c["scope"] for c in focused["checks"]} <= {f"agent:{name}", "team", "byollm", "account"}
    assert not [c for c in focused["checks"] if c["id"].startswith("team.prompt")]


# --- provider quota limits ---------------------------------------------------------------------------------------


def test_recent_throttling_in_the_request_log_is_the_quota_signal(stack: Stack) -> None:
    team = stack.new_team()  # Bedrock and direct: a throttled Bedrock attempt fails over
    assert check(api_doctor(stack, team.uid), "team.throttling")["status"] == "pass"
    stack.fault(service="bedrock", error="ThrottlingException", count=2)
    with stack.gateway(team.token, stack.delegated_headers()) as gateway:
        for _ in range(2):
            r = gateway.post("/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 20,
                                                   "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while True:
        throttling = check(api_doctor(stack, team.uid), "team.throttling")
        if throttling["status"] != "pass" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert throttling["status"] == "warn" and throttling["error_class"] == "quota_exceeded"
    assert f"2 throttled attempt(s) in the last 60 minutes: bedrock:{OPUS_GLOBAL} (2)" in throttling["detail"]
    assert throttling["remediation"] == ErrorClass.QUOTA_EXCEEDED.remediation


# --- who may run it -----------------------------------------------------------------------------------------------


def test_only_admins_run_the_doctor(stack: Stack) -> None:
    team = stack.new_team(BEDROCK_OPUS)
    r = httpx.get(f"{stack.url}/api/v1/teams/{team.uid}/doctor", headers={"authorization": f"Bearer {team.token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = httpx.get(f"{stack.url}/api/v1/teams/{team.uid}/doctor")
    assert r.status_code == 401


def test_application_profile_resources_come_from_the_account(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/simappsonnet1"  # wraps us.sonnet
    sonnet = "anthropic.claude-sonnet-4-6-v1:0"
    team = stack.new_team({"claude-sonnet-4-6": {"bedrock": True, "inference_profile": app}})
    only_here: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream",
                                     "bedrock:CountTokens"],
        "Resource": [app, f"arn:aws:bedrock:us-east-1::foundation-model/{sonnet}"]}]}
    role = put_role(stack, policy=only_here)
    trust_for(stack, role, [f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)

    # without the account's answer, the panel requires what the profile needs at least (its own region)
    assert check(api_doctor(stack, team.uid, permissions_policy=only_here), "team.permissions")["status"] == "pass"

    # the CLI reads where the profile routes (GetInferenceProfile) and names each region's model it lacks
    admin_aws_env(stack, monkeypatch, tmp_path)
    permissions = check(json.loads(cli_doctor("--team", team.uid, "--json")[1]), "team.permissions")
    assert permissions["status"] == "fail" and permissions["error_class"] == "insufficient_permissions"
    for region in ("us-east-2", "us-west-2"):
        assert f"arn:aws:bedrock:{region}::foundation-model/{sonnet} (bedrock:InvokeModel" in permissions["detail"]
    assert f"needed by claude-sonnet-4-6 via {app}" in permissions["detail"]
    assert "us-east-1::foundation-model" not in permissions["detail"]
