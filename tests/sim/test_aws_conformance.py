"""The simulator behaves as AWS documents, where it used to be more lenient (issue 17). Each test drives the
simulator with unmodified boto3 or the official AnthropicBedrock client; the AWS source of each behaviour is
listed in docs/aws-conformance.md."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from anthropic import AnthropicBedrock
from botocore.exceptions import ClientError

from byollm.sim import SimServer
from sim.sim_support import ACCOUNT, DEV_KEY, HAIKU, OPUS47, ClientFactory, Issuer, claude_body

INVOKE = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
US_REGIONS = ("us-east-1", "us-east-2", "us-west-2")


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _role_session(admin: httpx.Client, client: ClientFactory, policy: dict[str, Any], **assume: Any) -> Any:
    """A fresh role with ``policy`` as its only permissions policy, assumed by the dev user (AssumeRole)."""
    name = f"conf-{secrets.token_hex(4)}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    admin.put(f"/accounts/{ACCOUNT}/roles/{name}",
              json={"trust_policy": trust, "policies": {"p": policy}}).raise_for_status()
    creds = client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName="conf",
                                      **assume)["Credentials"]
    return creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]


def _invoke(client: ClientFactory, creds: Any, model: str, region: str = "us-east-1") -> str:
    """'ok', or the error code Bedrock answered."""
    try:
        client("bedrock-runtime", creds=creds, region=region).invoke_model(modelId=model, body=claude_body())
    except ClientError as err:
        return _code(err)
    return "ok"


# --- SigV4 clock skew ------------------------------------------------------------------------------------------


def test_bedrock_allows_five_minutes_of_clock_skew_and_sts_fifteen(
        sim: SimServer, client: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request signed 6 minutes before the server's clock is refused by Bedrock, with AWS's wording;
    STS still accepts it and refuses at 16 minutes."""
    real = time.time
    monkeypatch.setattr(sim.state, "clock", lambda: real() + 6 * 60)
    with pytest.raises(ClientError) as info:
        client("bedrock-runtime").invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    message = info.value.response["Error"]["Message"]
    assert message.startswith("Signature expired: ") and message.endswith(" - 5 min.)"), message
    assert client("sts").get_caller_identity()["Account"] == ACCOUNT
    monkeypatch.setattr(sim.state, "clock", lambda: real() - 6 * 60)  # signed 6 minutes in the future
    with pytest.raises(ClientError) as ahead:
        client("bedrock").list_foundation_models()
    assert "Signature not yet current" in ahead.value.response["Error"]["Message"]
    assert ahead.value.response["Error"]["Message"].endswith(" + 5 min.)")
    monkeypatch.setattr(sim.state, "clock", lambda: real() + 16 * 60)
    with pytest.raises(ClientError) as sts:
        client("sts").get_caller_identity()
    assert _code(sts.value) == "SignatureDoesNotMatch" and sts.value.response["Error"]["Message"].endswith("15 min.)")
    monkeypatch.setattr(sim.state, "clock", lambda: real() + 4 * 60)
    assert _invoke(client, DEV_KEY, HAIKU) == "ok"


# --- global and geographic inference profiles --------------------------------------------------------------------


def _global_policy(model: str, region: str = "us-east-1") -> dict[str, Any]:
    """AWS's documented least-privilege policy for a global profile (Bedrock user guide, "Global cross-Region
    inference", IAM section): the profile in the source Region, the model there, the region-less model, the
    model statements conditioned on the profile."""
    profile = f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/global.{model}"
    via = {"StringEquals": {"bedrock:InferenceProfileArn": profile}}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Profile", "Effect": "Allow", "Action": INVOKE, "Resource": profile},
        {"Sid": "SourceModel", "Effect": "Allow", "Action": INVOKE,
         "Resource": f"arn:aws:bedrock:{region}::foundation-model/{model}", "Condition": via},
        {"Sid": "GlobalModel", "Effect": "Allow", "Action": INVOKE,
         "Resource": f"arn:aws:bedrock:::foundation-model/{model}", "Condition": via}]}


def _us_policy(model: str, regions: tuple[str, ...] = US_REGIONS) -> dict[str, Any]:
    """AWS's documented least-privilege policy for a geographic profile ("Geographic cross-Region inference"):
    the profile in the source Region and the model in every destination Region."""
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{model}"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": INVOKE, "Resource": profile},
        {"Effect": "Allow", "Action": INVOKE,
         "Resource": [f"arn:aws:bedrock:{r}::foundation-model/{model}" for r in regions],
         "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}}}]}


def test_awss_documented_global_profile_policy_is_enough(admin: httpx.Client, client: ClientFactory) -> None:
    creds = _role_session(admin, client, _global_policy(OPUS47))
    assert _invoke(client, creds, f"global.{OPUS47}") == "ok"
    assert _invoke(client, creds, f"us.{OPUS47}") == "AccessDeniedException"  # nothing else


def test_global_profile_needs_the_region_less_model(admin: httpx.Client, client: ClientFactory) -> None:
    policy = _global_policy(OPUS47)
    policy["Statement"] = policy["Statement"][:2]
    creds = _role_session(admin, client, policy)
    with pytest.raises(ClientError) as info:
        client("bedrock-runtime", creds=creds).invoke_model(modelId=f"global.{OPUS47}", body=claude_body())
    assert f"on resource: arn:aws:bedrock:::foundation-model/{OPUS47}" in info.value.response["Error"]["Message"]


def test_awss_documented_geographic_profile_policy_needs_every_destination(
        admin: httpx.Client, client: ClientFactory) -> None:
    assert _invoke(client, _role_session(admin, client, _us_policy(OPUS47)), f"us.{OPUS47}") == "ok"
    short = _role_session(admin, client, _us_policy(OPUS47, US_REGIONS[:2]))
    assert _invoke(client, short, f"us.{OPUS47}") == "AccessDeniedException"


def _region_allow_list(regions: list[str]) -> dict[str, Any]:
    """A broad Allow plus a Deny outside a Region allow-list, the usual data-residency guard (or SCP)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "bedrock:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestedRegion": regions}}}]}


def test_a_region_allow_list_must_admit_unspecified_for_global_routing(
        admin: httpx.Client, client: ClientFactory) -> None:
    without = _role_session(admin, client, _region_allow_list(list(US_REGIONS)))
    assert _invoke(client, without, f"global.{OPUS47}") == "AccessDeniedException"
    assert _invoke(client, without, f"us.{OPUS47}") == "ok"  # every destination is in the list
    with_unspecified = _role_session(admin, client, _region_allow_list([*US_REGIONS, "unspecified"]))
    assert _invoke(client, with_unspecified, f"global.{OPUS47}") == "ok"


# --- issuer URL matching --------------------------------------------------------------------------------------


def _register(admin: httpx.Client, url: str) -> str:
    role = f"wi-{secrets.token_hex(4)}"
    admin.put(f"/accounts/{ACCOUNT}/roles/{role}", json={}).raise_for_status()
    answer = admin.post(f"/accounts/{ACCOUNT}/web-identity-trust",
                        json={"issuer": url, "role": role, "subject": "scoped_principal:team-1/*"})
    answer.raise_for_status()
    return str(answer.json()["role_arn"])


def test_a_trailing_slash_of_difference_is_another_issuer(
        admin: httpx.Client, client: ClientFactory, issuer: Issuer) -> None:
    """IAM keeps the provider URL as registered, slash included, and matches iss exactly."""
    admin.delete(f"/accounts/{ACCOUNT}/oidc-providers", params={"url": issuer.url}).raise_for_status()
    slashed = f"{issuer.url}/"
    role = _register(admin, slashed)
    with pytest.raises(ClientError) as info:  # the token's iss has no slash
        client("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="run",
                                                    WebIdentityToken=issuer.token())
    assert _code(info.value) == "InvalidIdentityToken"
    assert "No OpenIDConnect provider found in your account for " in info.value.response["Error"]["Message"]
    # the same slash in the token: accepted; the provider (its ARN and condition keys) keeps the slash
    answer = client("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="run",
                                                         WebIdentityToken=issuer.token(iss=slashed))
    host_path = slashed.split("://", 1)[1]
    assert answer["Provider"] == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_path}"
    trust = admin.get("/world").json()["accounts"][ACCOUNT]["roles"][role.rsplit("/", 1)[1]]["trust_policy"]
    assert f"{host_path}:sub" in trust["Statement"][0]["Condition"]["StringLike"]


# --- policy language --------------------------------------------------------------------------------------------


def test_a_partial_wildcard_in_a_principal_never_matches(
        admin: httpx.Client, client: ClientFactory, issuer: Issuer) -> None:
    role = f"wild-{secrets.token_hex(4)}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/*"},
        "Action": "sts:AssumeRoleWithWebIdentity"}]}
    admin.put(f"/accounts/{ACCOUNT}/roles/{role}", json={"trust_policy": trust}).raise_for_status()
    with pytest.raises(ClientError) as info:
        client("sts").assume_role_with_web_identity(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}",
                                                    RoleSessionName="run", WebIdentityToken=issuer.token())
    assert _code(info.value) == "AccessDenied"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_time_conditions_use_the_request_time(admin: httpx.Client, client: ClientFactory) -> None:
    now = datetime.now(UTC)
    allow_all = {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}
    ended = {"Version": "2012-10-17", "Statement": [allow_all, {  # a time-bound Deny that has begun
        "Effect": "Deny", "Action": "bedrock:*", "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": _iso(now - timedelta(hours=1))}}}]}
    assert _invoke(client, _role_session(admin, client, ended), HAIKU) == "AccessDeniedException"
    window = {"Version": "2012-10-17", "Statement": [{  # a time-window Allow we are inside of
        "Effect": "Allow", "Action": "bedrock:*", "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": _iso(now - timedelta(hours=1))},
                      "DateLessThan": {"aws:EpochTime": str(int((now + timedelta(hours=1)).timestamp()))}}}]}
    creds = _role_session(admin, client, window)
    assert _invoke(client, creds, HAIKU) == "ok"
    assert _invoke(client, creds, HAIKU) == "ok"  # the cached answer stays right


def test_ip_and_transport_conditions(admin: httpx.Client, client: ClientFactory) -> None:
    """An IP-conditioned policy installs and is evaluated against the caller's address; aws:SecureTransport
    is false over the simulator's plain HTTP."""
    def policy(condition: dict[str, Any]) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*", "Condition": condition}]}

    assert _invoke(client, _role_session(admin, client, policy({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})),
                   HAIKU) == "ok"
    assert _invoke(client, _role_session(admin, client, policy({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
                   HAIKU) == "AccessDeniedException"
    assert _invoke(client, _role_session(admin, client, policy({"Bool": {"aws:SecureTransport": "true"}})),
                   HAIKU) == "AccessDeniedException"
    assert _invoke(client, _role_session(admin, client, policy({"Bool": {"aws:SecureTransport": "false"}})),
                   HAIKU) == "ok"


def test_session_policy_arns_narrow_the_session(admin: httpx.Client, client: ClientFactory) -> None:
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}
    only_haiku = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "bedrock:InvokeModel",
        "Resource": f"arn:aws:bedrock:*::foundation-model/{HAIKU}"}]}
    arn = admin.put(f"/accounts/{ACCOUNT}/managed-policies/only-haiku", json=only_haiku).json()["arn"]
    creds = _role_session(admin, client, broad, PolicyArns=[{"arn": arn}])
    assert _invoke(client, creds, HAIKU) == "ok"
    with pytest.raises(ClientError) as info:
        client("bedrock-runtime", creds=creds).invoke_model(modelId=f"us.{OPUS47}", body=claude_body())
    assert "because no session policy allows the bedrock:InvokeModel action" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as control:  # the control plane too: the session may not list models
        client("bedrock", creds=creds).list_foundation_models()
    assert _code(control.value) == "AccessDeniedException"
    with pytest.raises(ClientError) as unknown:
        _role_session(admin, client, broad, PolicyArns=[{"arn": f"arn:aws:iam::{ACCOUNT}:policy/nope"}])
    assert _code(unknown.value) == "MalformedPolicyDocument"


@pytest.mark.parametrize("extra", [{"Resource": "*"}, {"NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}])
def test_trust_policies_iam_refuses_are_refused_at_install(admin: httpx.Client, extra: dict[str, Any]) -> None:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole",
                                 "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
    if "NotPrincipal" in extra:
        statement.pop("Principal")
    trust = {"Version": "2012-10-17", "Statement": [statement | extra]}
    answer = admin.put(f"/accounts/{ACCOUNT}/roles/byollm-developer/trust-policy", json=trust)
    assert answer.status_code == 400
    assert answer.json()["error"] == f"MalformedPolicyDocument: Has prohibited field {next(iter(extra))}"
    created = admin.put(f"/accounts/{ACCOUNT}/roles/conf-bad", json={"trust_policy": trust})
    assert created.status_code == 400 and "Has prohibited field" in created.json()["error"]


# --- the official AnthropicBedrock client ------------------------------------------------------------------------


def test_the_official_anthropic_bedrock_client_is_accepted(sim: SimServer) -> None:
    bedrock = AnthropicBedrock(aws_access_key=DEV_KEY[0], aws_secret_key=DEV_KEY[1], aws_region="us-east-1",
                               base_url=sim.url, max_retries=0)
    message = bedrock.messages.create(model=f"us.{OPUS47}", max_tokens=50,
                                      messages=[{"role": "user", "content": "hello"}])
    assert message.content and message.content[0].type == "text"
    with bedrock.messages.stream(model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream)
    invoked = [e for e in sim.state.journal.dump(service=None, limit=None) if "/model/" in str(e.get("path", ""))]
    assert invoked  # it went through the simulated Bedrock Runtime


# --- GetInferenceProfile ----------------------------------------------------------------------------------------


def test_get_inference_profile_is_authorised_on_the_real_profile_arn(
        admin: httpx.Client, client: ClientFactory) -> None:
    scoped = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "bedrock:GetInferenceProfile",
        "Resource": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/*"}]}
    creds = _role_session(admin, client, scoped)
    bedrock = client("bedrock", creds=creds)
    assert bedrock.get_inference_profile(inferenceProfileIdentifier=f"us.{OPUS47}")["type"] == "SYSTEM_DEFINED"
    with pytest.raises(ClientError) as info:  # the policy names us-east-1 only
        client("bedrock", creds=creds, region="us-west-2").get_inference_profile(
            inferenceProfileIdentifier=f"us.{OPUS47}")
    denied = info.value.response["Error"]["Message"]
    assert f"arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/us.{OPUS47}" in denied
    apps = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "bedrock:GetInferenceProfile",
        "Resource": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/*"}]}
    app_reader = client("bedrock", creds=_role_session(admin, client, apps))
    assert app_reader.get_inference_profile(inferenceProfileIdentifier="simappsonnet1")["type"] == "APPLICATION"


def test_session_policy_json_is_still_validated(admin: httpx.Client, client: ClientFactory) -> None:
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}
    with pytest.raises(ClientError) as info:
        _role_session(admin, client, broad, Policy=json.dumps({"Statement": [{"Effect": "Maybe"}]}))
    assert _code(info.value) == "MalformedPolicyDocument"
