"""IAM setup help: the documents themselves (pure), their three renderings, the CLI through the admin API,
and the proof that matters: installed in the simulator's IAM, they let a run in, and only that team's run."""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from byollm.catalog.loader import load_catalog
from byollm.cli.main import app
from byollm.errors import ByollmError
from byollm.gateway.executor import InferenceContext
from byollm.iam.policies import (
    OutputFormat,
    PolicyForm,
    oidc_provider_document,
    permissions_policy_document,
    trust_policy_document,
)
from byollm.policy.ids import new_uid
from byollm.policy.types import (
    Actor,
    ActorKind,
    BedrockHostConfig,
    BillingBucket,
    CredentialSource,
    Host,
    ModelPolicy,
    ModelRouting,
    RouteCandidate,
    TeamPolicy,
)
from support.oidc_stack import replica_services
from support.stack import ACCOUNT, Stack

ISSUER = "https://byollm.example.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/byollm-team"


def _policy(routes: dict[str, ModelRouting], region: str = "us-east-1") -> TeamPolicy:
    return TeamPolicy(team_uid="T" * 22, models=ModelPolicy(routes=routes),
                      bedrock=BedrockHostConfig(region=region, role_arn=ROLE))


def test_trust_policy_pins_the_team_and_audience() -> None:
    doc = trust_policy_document(issuer_url=ISSUER, audience="sts.amazonaws.com", team_uid="T" * 22, role_arn=ROLE,
                                fmt=OutputFormat.JSON)
    statement = doc.document["Statement"][0]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/byollm.example.com"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {"byollm.example.com:aud": "sts.amazonaws.com"},
        "StringLike": {"byollm.example.com:sub": f"scoped_principal:{'T' * 22}/*"},
    }
    assert json.loads(doc.rendered) == doc.document
    terraform = trust_policy_document(issuer_url=ISSUER, audience="sts.amazonaws.com", team_uid="T" * 22,
                                      role_arn=ROLE, fmt=OutputFormat.TERRAFORM).rendered
    assert 'resource "aws_iam_role"' in terraform and 'name                 = "byollm-team"' in terraform
    assert "assume_role_policy   = jsonencode(" in terraform and "scoped_principal:" in terraform
    cfn = json.loads(trust_policy_document(issuer_url=ISSUER, audience="sts.amazonaws.com", team_uid="T" * 22,
                                           role_arn=ROLE, fmt=OutputFormat.CLOUDFORMATION).rendered)
    role = cfn["Resources"]["ByollmRole"]
    assert role["Type"] == "AWS::IAM::Role" and role["Properties"]["AssumeRolePolicyDocument"] == doc.document
    strict = trust_policy_document(issuer_url=ISSUER, audience="a", team_uid="T" * 22, role_arn=None,
                                   fmt=OutputFormat.JSON, agent_uid="A" * 22, agent_strict=True)
    condition = strict.document["Statement"][0]["Condition"]["StringLike"]
    assert condition == {"byollm.example.com:sub": f"scoped_principal:{'T' * 22}/service_account:{'A' * 22}"}
    assert "ACCOUNT_ID" in strict.document["Statement"][0]["Principal"]["Federated"]


def test_permissions_cover_exactly_the_enabled_routes() -> None:
    catalog = load_catalog(None)
    app_profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/abc123"
    policy = _policy({
        "claude-haiku-4-5": ModelRouting("claude-haiku-4-5", bedrock=True),  # default: the global profile
        "claude-sonnet-4-6": ModelRouting("claude-sonnet-4-6", bedrock=True,
                                          inference_profile="us.anthropic.claude-sonnet-4-6-v1:0"),
        "claude-opus-4-7": ModelRouting("claude-opus-4-7", bedrock=True, inference_profile=app_profile),
        "claude-opus-4-1": ModelRouting("claude-opus-4-1", bedrock=False, direct=True),  # not on Bedrock
    })
    doc = permissions_policy_document(policy=policy, catalog=catalog, fmt=OutputFormat.JSON)
    statement = doc.document["Statement"][0]
    assert statement["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    resources = set(statement["Resource"])
    haiku = catalog.get("claude-haiku-4-5")
    sonnet = catalog.get("claude-sonnet-4-6")
    assert haiku is not None and haiku.bedrock is not None and sonnet is not None and sonnet.bedrock is not None
    glob = catalog.default_bedrock_upstream("claude-haiku-4-5", "us-east-1")
    assert glob is not None and glob.startswith("global.")
    fm = haiku.bedrock.foundation_model_id
    assert f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{glob}" in resources
    assert f"arn:aws:bedrock:us-east-1::foundation-model/{fm}" in resources
    assert f"arn:aws:bedrock:::foundation-model/{fm}" in resources
    # a global profile is authorised on the profile, the model in the source Region and the region-less model,
    # not on each destination Region (Bedrock user guide, "Global cross-Region inference", IAM policy section)
    assert {r for r in resources if fm in r} == {f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{glob}",
                                                  f"arn:aws:bedrock:us-east-1::foundation-model/{fm}",
                                                  f"arn:aws:bedrock:::foundation-model/{fm}"}
    us_regions = catalog.profile_regions("us.anthropic.claude-sonnet-4-6-v1:0")
    assert us_regions and all(
        f"arn:aws:bedrock:{r}::foundation-model/{sonnet.bedrock.foundation_model_id}" in resources for r in us_regions)
    assert app_profile in resources
    assert not any("opus-4-1" in r for r in resources)
    assert [m["model"] for m in doc.facts["models"]] == ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"]
    # count-tokens, which the gateway calls with the foundation-model id in the team's region
    count = doc.document["Statement"][1]
    assert count["Action"] == "bedrock:CountTokens"
    opus = catalog.get("claude-opus-4-7")
    assert opus is not None and opus.bedrock is not None
    assert set(count["Resource"]) == {f"arn:aws:bedrock:us-east-1::foundation-model/{m.bedrock.foundation_model_id}"
                                      for m in (haiku, sonnet, opus)}
    # the spec's wildcard form, offered beside the least-privilege one, covers the same three actions
    wildcard = doc.facts["forms"]["wildcard"]["Statement"][0]
    assert wildcard["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream",
                                  "bedrock:CountTokens"]
    assert wildcard["Resource"] == ["arn:aws:bedrock:*::foundation-model/*", "arn:aws:bedrock:*:*:inference-profile/*",
                                    "arn:aws:bedrock:*:*:application-inference-profile/*"]
    assert doc.facts["forms"]["least-privilege"] == doc.document
    as_wildcard = permissions_policy_document(policy=policy, catalog=catalog, fmt=OutputFormat.JSON,
                                              form=PolicyForm.WILDCARD)
    assert as_wildcard.document == doc.facts["forms"]["wildcard"]
    terraform = permissions_policy_document(policy=policy, catalog=catalog, fmt=OutputFormat.TERRAFORM).rendered
    assert 'resource "aws_iam_role_policy"' in terraform and "jsonencode(" in terraform
    cfn = json.loads(permissions_policy_document(policy=policy, catalog=catalog,
                                                 fmt=OutputFormat.CLOUDFORMATION).rendered)
    assert cfn["Resources"]["ByollmBedrockInvoke"]["Properties"]["PolicyDocument"] == doc.document


def test_oidc_provider_document() -> None:
    doc = oidc_provider_document(issuer_url=ISSUER, audience="sts.amazonaws.com", fmt=OutputFormat.TERRAFORM)
    assert 'url            = "https://byollm.example.com"' in doc.rendered
    assert 'client_id_list = ["sts.amazonaws.com"]' in doc.rendered
    assert doc.facts["issuer_host"] == "byollm.example.com" and any("humbprint" in n for n in doc.notes)
    cfn = json.loads(oidc_provider_document(issuer_url=ISSUER, audience="x", fmt=OutputFormat.CLOUDFORMATION).rendered)
    assert cfn["Resources"]["ByollmOidcProvider"]["Properties"] == {"Url": ISSUER, "ClientIdList": ["x"]}


# --- end to end through the CLI, the admin API and the simulator's IAM ---------------------------------------


def _cli(stack: Stack, token: str, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"BYOLLM_URL": stack.url, "BYOLLM_TOKEN": token})
    return result


def _role(stack: Stack, trust: dict[str, Any], permissions: dict[str, Any]) -> str:
    name = f"byollm-iam-{secrets.token_hex(4)}"
    r = stack.sim_http.put(f"/_sim/accounts/{ACCOUNT}/roles/{name}", json={
        "trust_policy": trust, "policies": {"byollm": permissions}, "max_session_duration": 3600})
    assert r.status_code == 200, r.text
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def _context(team_uid: str) -> InferenceContext:
    user = new_uid()
    return InferenceContext(request_id="r", api="anthropic", team_uid=team_uid, principal_type="user",
                            principal_uid=user, actor=Actor(ActorKind.USER_RUN, user), run_uid=new_uid())


def _candidate(role: str, upstream: str) -> RouteCandidate:
    return RouteCandidate(model="claude-haiku-4-5", host=Host.BEDROCK, upstream_model_id=upstream,
                          credential=CredentialSource.WEB_IDENTITY, billing=BillingBucket.CUSTOMER_CLOUD,
                          region="us-east-1", role_arn=role)


async def test_generated_documents_let_the_team_in_and_nobody_else(stack: Stack) -> None:
    r = stack.sim_http.post(f"/_sim/accounts/{ACCOUNT}/oidc-providers",
                            json={"url": stack.url, "client_ids": ["sts.amazonaws.com"]})
    assert r.status_code == 200, r.text
    team = stack.new_team({"claude-haiku-4-5": {"bedrock": True}, "claude-sonnet-4-6": {"direct": True}})
    team.bedrock(role_arn=f"arn:aws:iam::{ACCOUNT}:role/placeholder")
    trust = _cli(stack, stack.operator, "iam", "trust-policy", "--team", team.uid, "--json")
    perms = _cli(stack, stack.operator, "iam", "permissions-policy", "--team", team.uid)
    assert trust.exit_code == 0, trust.output
    assert perms.exit_code == 0, perms.output
    role = _role(stack, json.loads(trust.output)["document"], json.loads(perms.stdout))
    haiku = load_catalog(None).default_bedrock_upstream("claude-haiku-4-5", "us-east-1")
    assert haiku is not None
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        broker = services.oidc.web_identity
        auth = await broker.credentials_for(_context(team.uid), _candidate(role, haiku))
        with pytest.raises(ByollmError) as info:  # another team's run cannot use this role
            await broker.credentials_for(_context(new_uid()), _candidate(role, haiku))
    assert info.value.error_class.code == "role_assumption_failed"
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=stack.sim.url,
                          aws_access_key_id=auth.access_key_id, aws_secret_access_key=auth.secret_access_key,
                          aws_session_token=auth.session_token)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                       "messages": [{"role": "user", "content": "hi"}]})
    assert json.loads(client.invoke_model(modelId=haiku, body=body)["body"].read())["content"]
    # count-tokens (foundation-model id in the region) is covered by the generated policy too (issue 16 item 6)
    fm = load_catalog(None).get("claude-haiku-4-5")
    assert fm is not None and fm.bedrock is not None
    counted = client.count_tokens(modelId=fm.bedrock.foundation_model_id,
                                  input={"invokeModel": {"body": body.encode()}})
    assert counted["inputTokens"] > 0
    with pytest.raises(ClientError) as denied:  # a model the team does not route to Bedrock
        client.invoke_model(modelId="global.anthropic.claude-sonnet-4-6-v1:0", body=body)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_cli_formats_and_authorisation(stack: Stack) -> None:
    team = stack.new_team({"claude-haiku-4-5": {"bedrock": True}})
    agent = stack.admin.post(f"/teams/{team.uid}/agents", json={
        "name": "nightly", "role_arn_override": f"arn:aws:iam::{ACCOUNT}:role/byollm-agent"})
    assert agent.status_code == 201, agent.text
    terraform = _cli(stack, stack.operator, "iam", "trust-policy", "--team", team.uid, "--agent", "nightly",
                     "--format", "terraform")
    assert terraform.exit_code == 0, terraform.output
    assert 'name                 = "byollm-agent"' in terraform.stdout
    assert f"scoped_principal:{team.uid}/*" in terraform.stdout
    provider = _cli(stack, team.token, "iam", "oidc-provider", "--format", "cloudformation")  # any member
    assert provider.exit_code == 0, provider.output
    assert json.loads(provider.stdout)["Resources"]["ByollmOidcProvider"]["Properties"]["Url"] == stack.url
    refused = _cli(stack, team.token, "iam", "trust-policy", "--team", team.uid)  # members are not admins
    assert refused.exit_code == 1 and "forbidden" in refused.output
    missing = _cli(stack, stack.operator, "iam", "trust-policy", "--team", team.uid, "--agent", "nope")
    assert missing.exit_code == 1 and "not_found" in missing.output


async def test_wildcard_form_through_the_cli_covers_models_enabled_later(stack: Stack) -> None:
    r = stack.sim_http.post(f"/_sim/accounts/{ACCOUNT}/oidc-providers",
                            json={"url": stack.url, "client_ids": ["sts.amazonaws.com"]})
    assert r.status_code == 200, r.text
    team = stack.new_team({"claude-haiku-4-5": {"bedrock": True}})
    team.bedrock(role_arn=f"arn:aws:iam::{ACCOUNT}:role/placeholder")
    trust = _cli(stack, stack.operator, "iam", "trust-policy", "--team", team.uid, "--json")
    wildcard = _cli(stack, stack.operator, "iam", "permissions-policy", "--team", team.uid, "--form", "wildcard")
    assert trust.exit_code == 0 and wildcard.exit_code == 0, wildcard.output
    document = json.loads(wildcard.stdout)
    assert document["Statement"][0]["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream",
                                                  "bedrock:CountTokens"]
    role = _role(stack, json.loads(trust.output)["document"], document)
    haiku = load_catalog(None).default_bedrock_upstream("claude-haiku-4-5", "us-east-1")
    assert haiku is not None
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        auth = await services.oidc.web_identity.credentials_for(_context(team.uid), _candidate(role, haiku))
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=stack.sim.url,
                          aws_access_key_id=auth.access_key_id, aws_secret_access_key=auth.secret_access_key,
                          aws_session_token=auth.session_token)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                       "messages": [{"role": "user", "content": "hi"}]})
    # a model the team has not enabled yet, through its global profile: the wildcard form already covers it
    assert json.loads(client.invoke_model(modelId="global.anthropic.claude-sonnet-4-6-v1:0", body=body)["body"].read())
    assert client.count_tokens(modelId="anthropic.claude-sonnet-4-6-v1:0",
                               input={"invokeModel": {"body": body.encode()}})["inputTokens"] > 0
