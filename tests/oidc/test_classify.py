"""STS error classification and RoleSessionName rules, as a table (no network)."""

from __future__ import annotations

import pytest

from byollm.credentials.web_identity import ExchangeConfig, classify_sts_error, role_session_name, sts_endpoint
from byollm.gateway.executor import InferenceContext
from byollm.policy.types import Actor, ActorKind

ROLE = "arn:aws:iam::111122223333:role/byollm-team"
ISSUER = "https://byollm.example.com"
TEAM = "T" * 22


@pytest.mark.parametrize(("status", "code", "message", "expected", "mentions"), [
    (403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", "role_assumption_failed",
     f"scoped_principal:{TEAM}/*"),
    (400, "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {ISSUER}",
     "oidc_provider_missing", "OpenID Connect provider for https://byollm.example.com"),
    (400, "InvalidIdentityToken", "Incorrect token audience", "oidc_provider_missing", "client IDs"),
    (400, "InvalidIdentityToken", "Couldn't retrieve verification key", "issuer_unreachable", "JWKS"),
    (400, "IDPCommunicationError", "could not be reached", "issuer_unreachable",
     "https://byollm.example.com/.well-known/openid-configuration"),
    (403, "IDPRejectedClaim", "Token is not yet valid", "role_assumption_failed", "clock"),
    (400, "ExpiredTokenException", "Token expired", "role_assumption_failed", "NTP"),
    (403, "RegionDisabledException", "STS is not activated", "region_model_mismatch", "eu-south-2"),
    (400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
     "role_assumption_failed", "BYOLLM_WEB_IDENTITY_SESSION_SECONDS"),
    (400, "ValidationError", "arn is invalid", "role_assumption_failed", "arn is invalid"),
    (400, "Throttling", "Rate exceeded", "quota_exceeded", ROLE),
    (503, "", "", "upstream_unavailable", "HTTP 503"),
])
def test_sts_errors_map_to_one_class_each(status: int, code: str, message: str, expected: str,
                                          mentions: str) -> None:
    error = classify_sts_error(status, code, message, role_arn=ROLE, issuer=ISSUER, audience="sts.amazonaws.com",
                               team_uid=TEAM, region="eu-south-2", duration_s=7200)
    assert error.error_class.code == expected
    assert mentions in error.detail
    assert error.context["role_arn"] == ROLE and error.context["issuer_host"] == "byollm.example.com"


def _context(run_uid: str | None, request_id: str = "req") -> InferenceContext:
    return InferenceContext(request_id=request_id, api="anthropic", team_uid=TEAM, principal_type="user",
                            principal_uid="U" * 22, actor=Actor(ActorKind.USER_RUN, "U" * 22), run_uid=run_uid)


@pytest.mark.parametrize(("run_uid", "request_id", "expected"), [
    ("R" * 22, "x", "byollm-run-" + "R" * 22),
    (None, "req_abc", "byollm-req-req_abc"),
    (None, "a b/c:d!", "byollm-req-a-b-c-d-"),
    (None, "x" * 100, ("byollm-req-" + "x" * 100)[:64]),
])
def test_session_names_stay_within_sts_limits(run_uid: str | None, request_id: str, expected: str) -> None:
    name = role_session_name(_context(run_uid, request_id))
    assert name == expected and 2 <= len(name) <= 64


def test_endpoints_and_duration_bounds() -> None:
    assert sts_endpoint(None, "eu-west-1") == "https://sts.eu-west-1.amazonaws.com/"
    assert sts_endpoint(None, "cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn/"
    assert sts_endpoint("http://127.0.0.1:9", "us-east-1") == "http://127.0.0.1:9/"
    assert ExchangeConfig(duration_s=60).bounded_duration_s == 900
    assert ExchangeConfig(duration_s=10**6).bounded_duration_s == 43200
