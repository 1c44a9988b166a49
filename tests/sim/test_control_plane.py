"""IAM reads and the Bedrock control plane, through boto3 `iam` and `bedrock` clients."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from sim.sim_support import ACCOUNT, HAIKU, OPUS41, OPUS47, OTHER_KEY, SONNET46, ClientFactory, Issuer


def test_get_role_returns_the_trust_policy_as_a_document(client: ClientFactory, issuer: Issuer) -> None:
    role = client("iam").get_role(RoleName="byollm-team")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/byollm-team"
    assert role["MaxSessionDuration"] == 43200
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(issuer.url.split("://", 1)[1])


def test_get_role_unknown(client: ClientFactory) -> None:
    iam = client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="nobody")


def test_oidc_providers(client: ClientFactory, issuer: Issuer) -> None:
    iam = client("iam")
    arns = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    host_path = issuer.url.split("://", 1)[1]
    expected = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_path}"
    assert arns == [expected]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=expected)
    assert provider["Url"] == host_path
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/x.example")


def test_simulate_principal_policy(client: ClientFactory) -> None:
    results = client("iam").simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/byollm-agent",
        ActionNames=["bedrock:InvokeModel", "iam:CreateUser"],
        ResourceArns=[f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"],
    )["EvaluationResults"]
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in results] == [
        ("bedrock:InvokeModel", "allowed"),
        ("iam:CreateUser", "implicitDeny"),
    ]


def test_iam_reads_are_authorised(client: ClientFactory) -> None:
    with pytest.raises(ClientError) as info:
        client("iam", creds=OTHER_KEY).get_role(RoleName="other-team")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_list_foundation_models_per_region(client: ClientFactory) -> None:
    bedrock = client("bedrock", region="eu-north-1")
    models = {m["modelId"]: m for m in bedrock.list_foundation_models()["modelSummaries"]}
    assert set(models) == {SONNET46, HAIKU}
    assert models[HAIKU]["modelArn"] == f"arn:aws:bedrock:eu-north-1::foundation-model/{HAIKU}"
    assert models[SONNET46]["inferenceTypesSupported"] == ["INFERENCE_PROFILE"]
    us = client("bedrock").list_foundation_models(byProvider="Anthropic")["modelSummaries"]
    # Claude Opus 5 is newer than byollm's catalog: the gateway's catalog refresh finds it here
    assert {m["modelId"] for m in us} == {OPUS47, SONNET46, HAIKU, OPUS41, "anthropic.claude-opus-5-v1:0"}


def test_get_inference_profile(client: ClientFactory) -> None:
    bedrock = client("bedrock", region="us-west-2")
    profile = bedrock.get_inference_profile(inferenceProfileIdentifier=f"us.{OPUS41}")
    assert profile["type"] == "SYSTEM_DEFINED"
    assert profile["inferenceProfileArn"] == f"arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/us.{OPUS41}"
    assert [m["modelArn"].split(":")[3] for m in profile["models"]] == ["us-east-1", "us-east-2", "us-west-2"]
    app_arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/simappsonnet1"
    app = client("bedrock").get_inference_profile(inferenceProfileIdentifier=app_arn)
    assert app["type"] == "APPLICATION"
    assert len(app["models"]) == 3
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_inference_profile(inferenceProfileIdentifier=f"eu.{OPUS41}")


def test_invocation_logging_configuration(client: ClientFactory) -> None:
    config = client("bedrock").get_model_invocation_logging_configuration()
    assert config["loggingConfig"]["textDataDeliveryEnabled"] is True
    assert "loggingConfig" not in client("bedrock", creds=OTHER_KEY).get_model_invocation_logging_configuration()
