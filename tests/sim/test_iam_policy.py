"""IAM policy evaluation: a table per condition operator, plus Allow/Deny, wildcards and principals."""

from __future__ import annotations

from typing import Any

import pytest

from byollm.sim.iam_policy import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    PolicyError,
    compile_policies,
    condition_matches,
)

SUB = "issuer.example.com:sub"
AMR = "issuer.example.com:amr"

# (operator, key, policy value, request context, expected)
CONDITION_TABLE: list[tuple[str, str, Any, dict[str, list[str]], bool]] = [
    # StringEquals: exact, case-sensitive, any of the policy values
    ("StringEquals", SUB, "team-1", {SUB: ["team-1"]}, True),
    ("StringEquals", SUB, "team-1", {SUB: ["Team-1"]}, False),
    ("StringEquals", SUB, ["a", "team-1"], {SUB: ["team-1"]}, True),
    ("StringEquals", SUB, "team-1", {}, False),
    ("StringEquals", "ISSUER.example.com:SUB", "team-1", {SUB: ["team-1"]}, True),  # keys are case-insensitive
    # StringNotEquals: true when the key is missing
    ("StringNotEquals", SUB, "team-1", {SUB: ["team-2"]}, True),
    ("StringNotEquals", SUB, "team-1", {SUB: ["team-1"]}, False),
    ("StringNotEquals", SUB, "team-1", {}, True),
    # StringEqualsIgnoreCase / StringNotEqualsIgnoreCase
    ("StringEqualsIgnoreCase", SUB, "TEAM-1", {SUB: ["team-1"]}, True),
    ("StringNotEqualsIgnoreCase", SUB, "TEAM-1", {SUB: ["team-1"]}, False),
    # StringLike: * and ?, case-sensitive
    ("StringLike", SUB, "scoped_principal:team-1/*", {SUB: ["scoped_principal:team-1/user:a"]}, True),
    ("StringLike", SUB, "scoped_principal:team-1/*", {SUB: ["scoped_principal:team-10/user:a"]}, False),
    ("StringLike", SUB, "team-?", {SUB: ["team-7"]}, True),
    ("StringLike", SUB, "team-?", {SUB: ["team-77"]}, False),
    ("StringLike", SUB, "TEAM-*", {SUB: ["team-1"]}, False),
    ("StringLike", SUB, "*", {}, False),
    # StringNotLike
    ("StringNotLike", SUB, "team-2*", {SUB: ["team-1"]}, True),
    ("StringNotLike", SUB, "team-1*", {SUB: ["team-1"]}, False),
    ("StringNotLike", SUB, "team-1*", {}, True),
    # IfExists: a missing key passes, a present key is tested
    ("StringEqualsIfExists", SUB, "team-1", {}, True),
    ("StringEqualsIfExists", SUB, "team-1", {SUB: ["team-2"]}, False),
    ("StringLikeIfExists", SUB, "team-*", {SUB: ["team-2"]}, True),
    # Null
    ("Null", SUB, "true", {}, True),
    ("Null", SUB, "true", {SUB: ["x"]}, False),
    ("Null", SUB, "false", {SUB: ["x"]}, True),
    ("Null", SUB, "false", {}, False),
    # ForAnyValue / ForAllValues on a multi-valued key
    ("ForAnyValue:StringEquals", AMR, "mfa", {AMR: ["pwd", "mfa"]}, True),
    ("ForAnyValue:StringEquals", AMR, "mfa", {AMR: ["pwd"]}, False),
    ("ForAnyValue:StringEquals", AMR, "mfa", {}, False),
    ("ForAnyValue:StringLike", AMR, "mfa*", {AMR: ["pwd", "mfa-totp"]}, True),
    ("ForAllValues:StringEquals", AMR, ["pwd", "mfa"], {AMR: ["pwd", "mfa"]}, True),
    ("ForAllValues:StringEquals", AMR, ["pwd"], {AMR: ["pwd", "mfa"]}, False),
    ("ForAllValues:StringEquals", AMR, ["pwd"], {}, True),
    ("ForAnyValue:StringNotEquals", AMR, "pwd", {AMR: ["pwd", "mfa"]}, True),
    ("ForAllValues:StringNotEquals", AMR, "pwd", {AMR: ["pwd", "mfa"]}, False),
    # Arn*
    ("ArnLike", "aws:SourceArn", "arn:aws:iam::*:role/team-*", {"aws:sourcearn": ["arn:aws:iam::1:role/team-a"]}, True),
    ("ArnEquals", "aws:SourceArn", "arn:aws:iam::1:role/x", {"aws:sourcearn": ["arn:aws:iam::1:role/y"]}, False),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:iam::1:*", {"aws:sourcearn": ["arn:aws:iam::2:role/y"]}, True),
    # Numeric*, Date*, Bool
    ("NumericLessThan", "n", "10", {"n": ["9"]}, True),
    ("NumericLessThan", "n", 10, {"n": ["10"]}, False),
    ("NumericGreaterThanEquals", "n", "10", {"n": ["10"]}, True),
    ("NumericEquals", "n", "10", {"n": ["ten"]}, False),
    ("NumericNotEquals", "n", "10", {}, True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", {"aws:currenttime": ["2029-12-31T00:00:00Z"]}, True),
    (
        "DateGreaterThan",
        "aws:CurrentTime",
        "2030-01-01T00:00:00Z",
        {"aws:currenttime": ["2029-12-31T00:00:00Z"]},
        False,
    ),
    ("Bool", "aws:SecureTransport", True, {"aws:securetransport": ["true"]}, True),
    ("Bool", "aws:SecureTransport", "true", {"aws:securetransport": ["false"]}, False),
    ("BoolIfExists", "aws:SecureTransport", "true", {}, True),
]


@pytest.mark.parametrize(("operator", "key", "value", "context", "expected"), CONDITION_TABLE)
def test_condition_operator_table(
    operator: str, key: str, value: Any, context: dict[str, list[str]], expected: bool
) -> None:
    assert condition_matches(operator, key, value, context) is expected


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


FM = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"

EVAL_TABLE: list[tuple[dict[str, Any], str, str, str]] = [
    (_policy({"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": FM}), "bedrock:InvokeModel", FM, ALLOWED),
    (_policy({"Effect": "Allow", "Action": "bedrock:invokemodel", "Resource": FM}), "bedrock:InvokeModel", FM, ALLOWED),
    (_policy({"Effect": "Allow", "Action": "bedrock:Invoke*", "Resource": "*"}), "bedrock:InvokeModel", FM, ALLOWED),
    (_policy({"Effect": "Allow", "Action": "bedrock:Get*", "Resource": "*"}), "bedrock:InvokeModel", FM, IMPLICIT_DENY),
    (
        _policy({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:bedrock:*::foundation-model/anthropic.*"}),
        "bedrock:InvokeModel",
        FM,
        ALLOWED,
    ),
    (
        _policy({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:bedrock:us-west-2::foundation-model/*"}),
        "bedrock:InvokeModel",
        FM,
        IMPLICIT_DENY,
    ),
    (
        _policy(
            {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "bedrock:InvokeModel", "Resource": FM},
        ),
        "bedrock:InvokeModel",
        FM,
        EXPLICIT_DENY,
    ),
    (_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "bedrock:InvokeModel", FM, ALLOWED),
    (_policy({"Effect": "Allow", "Action": "*", "NotResource": FM}), "bedrock:InvokeModel", FM, IMPLICIT_DENY),
    (_policy(), "bedrock:InvokeModel", FM, IMPLICIT_DENY),
]


@pytest.mark.parametrize(("policy", "action", "resource", "expected"), EVAL_TABLE)
def test_evaluation_table(policy: dict[str, Any], action: str, resource: str, expected: str) -> None:
    assert compile_policies([policy]).evaluate(action, resource).decision == expected


def test_statement_may_be_a_single_object() -> None:
    doc = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}
    assert compile_policies([doc]).evaluate("s3:GetObject", "x").allowed


def test_trust_policy_matches_federated_principal_and_conditions() -> None:
    provider = "arn:aws:iam::111122223333:oidc-provider/issuer.example.com"
    trust = _policy(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"issuer.example.com:aud": "sts.amazonaws.com"},
                "StringLike": {"issuer.example.com:sub": "scoped_principal:team-1/*"},
            },
        }
    )
    compiled = compile_policies([trust])
    ctx = {"issuer.example.com:aud": ["sts.amazonaws.com"], "issuer.example.com:sub": ["scoped_principal:team-1/x"]}
    action = "sts:AssumeRoleWithWebIdentity"
    assert compiled.evaluate(action, None, ctx, principal=("Federated", provider)).allowed
    other = "arn:aws:iam::111122223333:oidc-provider/evil.example.com"
    assert not compiled.evaluate(action, None, ctx, principal=("Federated", other)).allowed
    assert not compiled.evaluate(action, None, ctx, principal=("AWS", provider)).allowed
    bad_ctx = {**ctx, "issuer.example.com:sub": ["scoped_principal:team-2/x"]}
    assert not compiled.evaluate(action, None, bad_ctx, principal=("Federated", provider)).allowed


@pytest.mark.parametrize(
    "doc",
    [
        {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "*", "Condition": {"StringSorta": {"k": "v"}}}]},
        {"Statement": [{"Effect": "Allow", "Action": 3}]},
        {"Version": "2012-10-17"},
    ],
)
def test_malformed_policies_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        compile_policies([doc])
