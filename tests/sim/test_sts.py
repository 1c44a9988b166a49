"""STS AssumeRoleWithWebIdentity / GetCallerIdentity / GetSessionToken driven by unmodified boto3."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from joserfc.jwk import RSAKey

from byollm.sim import SimServer
from sim.sim_support import ACCOUNT, AGENT_ROLE, HAIKU, TEAM_ROLE, ClientFactory, Issuer, claude_body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _assume(client: ClientFactory, token: str, role: str = TEAM_ROLE, **kw: Any) -> dict[str, Any]:
    sts = client("sts")
    result: dict[str, Any] = sts.assume_role_with_web_identity(
        RoleArn=role, RoleSessionName=kw.pop("session", "run-1"), WebIdentityToken=token, **kw
    )
    return result


def _error(client: ClientFactory, token: str, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        _assume(client, token, **kw)
    return info.value


def test_good_token_issues_credentials_that_work_on_bedrock(client: ClientFactory, issuer: Issuer) -> None:
    resp = _assume(client, issuer.token(), session="run-42")
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert resp["SubjectFromWebIdentityToken"] == "scoped_principal:team-1/user:alice"
    assert resp["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/byollm-team/run-42"
    assert resp["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    # the provider's ARN, not the iss URL (STS API reference, AssumeRoleWithWebIdentity response "Provider")
    assert resp["Provider"] == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.url.split('://', 1)[1]}"
    assert resp["Audience"] == "sts.amazonaws.com"
    assert 3500 < creds["Expiration"].timestamp() - time.time() <= 3600

    temp = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    ident = client("sts", creds=temp).get_caller_identity()
    assert ident["Arn"] == resp["AssumedRoleUser"]["Arn"]
    out = client("bedrock-runtime", creds=temp).invoke_model(modelId=HAIKU, body=claude_body())
    assert "[bedrock:" in json.loads(out["body"].read())["content"][0]["text"]


def test_es256_token_is_accepted(client: ClientFactory, issuer: Issuer) -> None:
    assert _assume(client, issuer.token(alg="ES256"))["Credentials"]["AccessKeyId"].startswith("ASIA")


def test_garbage_token_is_invalid(client: ClientFactory, issuer: Issuer) -> None:
    sts = client("sts")
    with pytest.raises(sts.exceptions.InvalidIdentityTokenException):
        sts.assume_role_with_web_identity(RoleArn=TEAM_ROLE, RoleSessionName="s1", WebIdentityToken="not-a-jwt")


def test_alg_none_is_refused(client: ClientFactory, issuer: Issuer) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{_b64(json.dumps(issuer.claims()).encode())}."
    assert _error(client, token).response["Error"]["Code"] == "InvalidIdentityToken"


def test_hs256_signed_with_the_public_key_is_refused(client: ClientFactory, issuer: Issuer) -> None:
    public_pem = issuer.rsa.as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(issuer.claims()).encode())
    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert _error(client, f"{header}.{payload}.{sig}").response["Error"]["Code"] == "InvalidIdentityToken"


def test_expired_token(client: ClientFactory, issuer: Issuer) -> None:
    sts = client("sts")
    past = int(time.time()) - 3600
    with pytest.raises(sts.exceptions.ExpiredTokenException) as info:
        sts.assume_role_with_web_identity(
            RoleArn=TEAM_ROLE, RoleSessionName="s1", WebIdentityToken=issuer.token(iat=past, exp=past + 60)
        )
    assert "Token expired" in str(info.value)


def test_wrong_audience(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(aud="someone-else"))
    assert err.response["Error"]["Code"] == "InvalidIdentityToken"
    assert err.response["Error"]["Message"] == "Incorrect token audience"


def test_audience_list_matches_any(client: ClientFactory, issuer: Issuer) -> None:
    resp = _assume(client, issuer.token(aud=["other", "sts.amazonaws.com"]))
    assert resp["Audience"] == "sts.amazonaws.com"


def test_unregistered_issuer(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(iss="https://unknown.example.com"))
    assert err.response["Error"]["Code"] == "InvalidIdentityToken"
    assert err.response["Error"]["Message"] == (
        "No OpenIDConnect provider found in your account for https://unknown.example.com"
    )


def test_unknown_kid(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(kid="nobody"))
    assert err.response["Error"]["Code"] == "InvalidIdentityToken"
    assert "verification key" in err.response["Error"]["Message"]


def test_signature_from_another_key_is_refused(client: ClientFactory, issuer: Issuer) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    assert _error(client, issuer.token(key=other)).response["Error"]["Code"] == "InvalidIdentityToken"


def test_subject_not_allowed_by_trust_policy(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(sub="scoped_principal:team-2/user:mallory"))
    assert err.response["Error"]["Code"] == "AccessDenied"
    assert err.response["Error"]["Message"] == "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_role_without_trust_policy_denies(client: ClientFactory, issuer: Issuer) -> None:
    assert _error(client, issuer.token(), role=AGENT_ROLE).response["Error"]["Code"] == "AccessDenied"


def test_non_integer_exp_is_invalid(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(exp=time.time() + 600.5))
    assert err.response["Error"]["Code"] == "InvalidIdentityToken"


def test_token_from_the_future_is_rejected_claim(client: ClientFactory, issuer: Issuer) -> None:
    sts = client("sts")
    future = int(time.time()) + 3600
    with pytest.raises(sts.exceptions.IDPRejectedClaimException):
        sts.assume_role_with_web_identity(
            RoleArn=TEAM_ROLE, RoleSessionName="s1", WebIdentityToken=issuer.token(nbf=future, exp=future + 600)
        )


def test_unreachable_issuer_is_idp_communication_error(
    client: ClientFactory, issuer: Issuer, admin: httpx.Client
) -> None:
    dead = "http://127.0.0.1:9/dead"
    admin.post(
        f"/accounts/{ACCOUNT}/web-identity-trust", json={"issuer": dead, "role": "byollm-team", "subject": "*"}
    ).raise_for_status()
    sts = client("sts")
    with pytest.raises(sts.exceptions.IDPCommunicationErrorException):
        sts.assume_role_with_web_identity(
            RoleArn=TEAM_ROLE, RoleSessionName="s1", WebIdentityToken=issuer.token(iss=dead)
        )


def test_duration_above_max_session_duration(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> None:
    admin.post(
        f"/accounts/{ACCOUNT}/web-identity-trust",
        json={"issuer": issuer.url, "role": "byollm-agent", "subject": "scoped_principal:team-1/*"},
    ).raise_for_status()
    err = _error(client, issuer.token(), role=AGENT_ROLE, DurationSeconds=7200)
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "MaxSessionDuration" in err.response["Error"]["Message"]
    assert _assume(client, issuer.token(), role=AGENT_ROLE, DurationSeconds=3600)["Credentials"]


def test_bad_session_name(client: ClientFactory, issuer: Issuer) -> None:
    err = _error(client, issuer.token(), session="has space")
    assert err.response["Error"]["Code"] == "ValidationError"


def test_key_rotation_is_picked_up(client: ClientFactory, issuer: Issuer) -> None:
    assert _assume(client, issuer.token())  # caches the JWKS
    new = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig", "alg": "RS256"})
    issuer.publish(new)
    assert _assume(client, issuer.token(key=new))
    assert _error(client, issuer.token()).response["Error"]["Code"] == "InvalidIdentityToken"  # old key gone


def test_key_replaced_under_the_same_kid_is_picked_up(client: ClientFactory, issuer: Issuer) -> None:
    assert _assume(client, issuer.token())  # caches the JWKS
    replacement = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
    issuer.publish(replacement)
    assert _assume(client, issuer.token(key=replacement))


def test_condition_on_amr(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> None:
    host = issuer.url.split("://", 1)[1]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"ForAnyValue:StringLike": {f"{host}:amr": "mfa*"}},
            }
        ],
    }
    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/trust-policy", json=policy).raise_for_status()
    assert _assume(client, issuer.token(amr=["pwd", "mfa-totp"]))
    assert _error(client, issuer.token(amr=["pwd"])).response["Error"]["Code"] == "AccessDenied"
    assert _error(client, issuer.token()).response["Error"]["Code"] == "AccessDenied"  # key missing


def test_session_policy_narrows_permissions(client: ClientFactory, issuer: Issuer) -> None:
    narrow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}
    creds = _assume(client, issuer.token(), Policy=json.dumps(narrow))["Credentials"]
    runtime = client("bedrock-runtime", creds=(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]))
    with pytest.raises(runtime.exceptions.AccessDeniedException):
        runtime.invoke_model(modelId=HAIKU, body=claude_body())


def test_strict_mode_refuses_http_issuers(admin: httpx.Client, sim: SimServer) -> None:
    admin.put("/settings", json={"allow_http_loopback_issuers": False}).raise_for_status()
    resp = admin.post(f"/accounts/{ACCOUNT}/oidc-providers", json={"url": "http://127.0.0.1:8000"})
    assert resp.status_code == 400
    resp = admin.post(f"/accounts/{ACCOUNT}/oidc-providers", json={"url": "https://issuer.example.com:8443"})
    assert resp.status_code == 400
    resp = admin.post(f"/accounts/{ACCOUNT}/oidc-providers", json={"url": "https://issuer.example.com/tenant"})
    assert resp.status_code == 200
    assert resp.json()["arn"] == f"arn:aws:iam::{ACCOUNT}:oidc-provider/issuer.example.com/tenant"


def test_get_session_token_for_iam_user(client: ClientFactory) -> None:
    sts = client("sts")
    creds = sts.get_session_token(DurationSeconds=900)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    temp = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert client("sts", creds=temp).get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/byollm-dev"
    with pytest.raises(ClientError) as info:
        client("sts", creds=temp).get_session_token()
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_get_caller_identity_rejects_unknown_key(client: ClientFactory) -> None:
    with pytest.raises(ClientError) as info:
        client("sts", creds=("AKIAUNKNOWN000000000", "x" * 40)).get_caller_identity()
    assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_get_caller_identity_rejects_bad_secret(client: ClientFactory) -> None:
    with pytest.raises(ClientError) as info:
        client("sts", creds=("AKIASIMDEV0000000001", "wrong" * 8)).get_caller_identity()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_sts_fault_injection(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "sts", "error": "IDPCommunicationError", "count": 1}).raise_for_status()
    sts = client("sts")
    with pytest.raises(sts.exceptions.IDPCommunicationErrorException):
        _assume(client, issuer.token())
    assert _assume(client, issuer.token())


def test_sts_timeout_fault(sim: SimServer, issuer: Issuer, admin: httpx.Client) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ReadTimeoutError

    admin.post("/faults", json={"service": "sts", "timeout": True, "count": 1}).raise_for_status()
    sts = boto3.client(
        "sts",
        endpoint_url=sim.url,
        region_name="us-east-1",
        aws_access_key_id="AKIASIMDEV0000000001",
        aws_secret_access_key="simDevSecretKey0000000000000000000000001",
        config=Config(read_timeout=0.5, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ReadTimeoutError):
        sts.assume_role_with_web_identity(RoleArn=TEAM_ROLE, RoleSessionName="s1", WebIdentityToken=issuer.token())
    # the fault fired once; a client with an ordinary timeout now succeeds (0.5 s is too tight under load for an
    # honest validation, which fetches the issuer's keys)
    patient = boto3.client("sts", endpoint_url=sim.url, region_name="us-east-1",
                           aws_access_key_id="AKIASIMDEV0000000001",
                           aws_secret_access_key="simDevSecretKey0000000000000000000000001",
                           config=Config(read_timeout=30, retries={"total_max_attempts": 1}))
    assert patient.assume_role_with_web_identity(RoleArn=TEAM_ROLE, RoleSessionName="s1",
                                                 WebIdentityToken=issuer.token())


def test_assume_role_from_an_iam_user(client: ClientFactory) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/byollm-developer"
    resp = client("sts").assume_role(RoleArn=role, RoleSessionName="alice", DurationSeconds=3600)
    assert resp["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/byollm-developer/alice"
    creds = resp["Credentials"]
    runtime = client("bedrock-runtime", creds=(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]))
    assert json.loads(runtime.invoke_model(modelId=HAIKU, body=claude_body())["body"].read())["content"]


def test_assume_role_needs_trust(client: ClientFactory) -> None:
    with pytest.raises(ClientError) as info:
        client("sts").assume_role(RoleArn=TEAM_ROLE, RoleSessionName="alice")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert "sts:AssumeRole on resource" in info.value.response["Error"]["Message"]
