"""byollm's own IAM evaluator on the rules issue 17 found missing: the global condition keys with the Date, IP
and Bool operators, principals compared whole, and trust policies IAM refuses to store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from byollm.iam.evaluate import MalformedPolicy, evaluate_identity, evaluate_trust, global_context

PROVIDER = "arn:aws:iam::111122223333:oidc-provider/byollm.example.com"
MODEL = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def _allow(condition: dict[str, Any], effect: str = "Allow") -> dict[str, Any]:
    statements = [{"Effect": effect, "Action": "bedrock:*", "Resource": "*", "Condition": condition}]
    if effect == "Deny":
        statements.insert(0, {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def _decision(document: dict[str, Any], **context: Any) -> str:
    ctx = global_context(now=NOW, **context)
    return evaluate_identity([document], "bedrock:InvokeModel", MODEL, ctx).decision.value


def test_global_context_carries_the_keys_aws_sets() -> None:
    ctx = global_context(now=NOW, requested_region="unspecified", principal_arn="arn:aws:iam::1:role/r",
                         source_ip="192.0.2.7")
    assert ctx == {"aws:CurrentTime": ["2026-12-03T07:00:00Z"], "aws:EpochTime": [str(int(NOW.timestamp()))],
                   "aws:SecureTransport": ["true"], "aws:RequestedRegion": ["unspecified"],
                   "aws:PrincipalArn": ["arn:aws:iam::1:role/r"], "aws:SourceIp": ["192.0.2.7"]}


def test_date_operators() -> None:
    assert _decision(_allow({"DateGreaterThan": {"aws:CurrentTime": "2026-12-03T06:00:00Z"}}, "Deny")) == "explicitDeny"
    assert _decision(_allow({"DateLessThan": {"aws:CurrentTime": "2026-12-04"}})) == "allowed"
    assert _decision(_allow({"DateLessThan": {"aws:CurrentTime": "2026-12-03T07:30:00+01:00"}})) == "implicitDeny"
    assert _decision(_allow({"DateGreaterThanEquals": {"aws:EpochTime": str(int(NOW.timestamp()))}})) == "allowed"
    with pytest.raises(MalformedPolicy):
        _decision(_allow({"DateLessThan": {"aws:CurrentTime": "next tuesday"}}))


def test_ip_operators() -> None:
    assert _decision(_allow({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}),
                     source_ip="192.0.2.7") == "allowed"
    assert _decision(_allow({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
                     source_ip="198.51.100.1") == "implicitDeny"
    assert _decision(_allow({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, "Deny"),
                     source_ip="198.51.100.1") == "explicitDeny"
    assert _decision(_allow({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}})) == "implicitDeny"  # unknown: absent
    with pytest.raises(MalformedPolicy):
        _decision(_allow({"IpAddress": {"aws:SourceIp": "not-an-ip"}}))


def test_bool_and_region_keys() -> None:
    assert _decision(_allow({"Bool": {"aws:SecureTransport": "false"}}, "Deny")) == "allowed"
    assert _decision(_allow({"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}),
                     requested_region="unspecified") == "implicitDeny"
    assert _decision(_allow({"StringEquals": {"aws:RequestedRegion": ["us-east-1", "unspecified"]}}),
                     requested_region="unspecified") == "allowed"


def _trust(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal,
                                                    "Action": "sts:AssumeRoleWithWebIdentity", **extra}]}


def test_principals_are_compared_whole() -> None:
    for pattern in ("arn:aws:iam::111122223333:oidc-provider/*", "arn:aws:iam::*:oidc-provider/byollm.example.com",
                    "arn:aws:iam::111122223333:oidc-provider/byollm.example.co?"):
        evaluation = evaluate_trust(_trust({"Federated": pattern}), principal=("Federated", PROVIDER), context={})
        assert not evaluation.allowed
        assert "partial wildcard" in evaluation.reasons()[0]
    assert evaluate_trust(_trust({"Federated": PROVIDER}), principal=("Federated", PROVIDER), context={}).allowed
    assert evaluate_trust(_trust("*"), principal=("Federated", PROVIDER), context={}).allowed


@pytest.mark.parametrize("field", ["Resource", "NotResource"])
def test_trust_policies_iam_refuses_are_malformed(field: str) -> None:
    with pytest.raises(MalformedPolicy, match=f"Has prohibited field {field}"):
        evaluate_trust(_trust({"Federated": PROVIDER}, **{field: "*"}), principal=("Federated", PROVIDER), context={})
    not_principal = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "NotPrincipal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity"}]}
    with pytest.raises(MalformedPolicy, match="Has prohibited field NotPrincipal"):
        evaluate_trust(not_principal, principal=("Federated", PROVIDER), context={})
