"""The product on loopback with byollm as an OIDC issuer the simulator's STS can reach.

``running_oidc_stack`` is ``support.stack.running_stack`` with one difference: the server's socket is bound
before the app is built, so its URL is the issuer URL in ``Settings`` (the simulator accepts plain-http
loopback issuers). Tests get a ``Stack`` plus helpers to create IAM roles in the simulator that trust
byollm's issuer for one team, and to open a second "replica" (``replica_services``) in the test's own event
loop that shares the database with the server.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from byollm.services import Services, build_services
from byollm.settings import Settings
from support.stack import ACCOUNT, Stack, running_stack

__all__ = ["INVOKE_POLICY", "make_role", "minted_tokens", "replica_services", "running_oidc_stack", "sts_calls"]

INVOKE_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CountTokens"],
        "Resource": [
            "arn:aws:bedrock:*::foundation-model/anthropic.*",
            f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/*",
            f"arn:aws:bedrock:*:{ACCOUNT}:application-inference-profile/*",
        ],
    }],
}

TEST_OIDC_SETTINGS: dict[str, Any] = {
    "oidc_key_publish_delay_seconds": 0.0,
    "oidc_key_cache_seconds": 0.0,
    "oidc_jwks_max_age_seconds": 1,
    "oidc_key_rotation_seconds": 0.0,
}


@contextmanager
def running_oidc_stack(data_dir: Path, world: Any = None, **overrides: Any) -> Iterator[Stack]:
    """``running_stack`` with issuer timings fit for tests (keys publish at once, short caches)."""
    with running_stack(data_dir, world, **{**TEST_OIDC_SETTINGS, **overrides}) as stack:
        yield stack


def make_role(stack: Stack, *, subjects: Sequence[str], max_session_duration: int = 3600,
              issuer: str | None = None, name: str | None = None,
              policy: dict[str, Any] | None = None) -> str:
    """A fresh role in the simulator trusting ``issuer`` (default byollm's) for ``subjects``; its ARN."""
    name = name or f"byollm-test-{secrets.token_hex(4)}"
    r = stack.sim_http.put(f"/_sim/accounts/{ACCOUNT}/roles/{name}", json={
        "policies": {"invoke": policy or INVOKE_POLICY}, "max_session_duration": max_session_duration})
    assert r.status_code == 200, r.text
    r = stack.sim_http.post(f"/_sim/accounts/{ACCOUNT}/web-identity-trust", json={
        "issuer": issuer or stack.url, "role": name, "subjects": list(subjects), "audience": "sts.amazonaws.com"})
    assert r.status_code == 200, r.text
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def sts_calls(stack: Stack) -> list[dict[str, Any]]:
    """AssumeRoleWithWebIdentity requests the simulator received (journal entries)."""
    return [e for e in stack.journal("sts") if "AssumeRoleWithWebIdentity" in str(e.get("body", ""))]


def minted_tokens(stack: Stack) -> list[str]:
    """Every web-identity token byollm sent to the simulator's STS (for canary scans)."""
    tokens = []
    for entry in sts_calls(stack):
        params = parse_qs(str(entry.get("body", "")))
        tokens.extend(params.get("WebIdentityToken", []))
    return tokens


@asynccontextmanager
async def replica_services(settings: Settings) -> AsyncIterator[Services]:
    """Another replica's services in the caller's event loop, sharing the server's database."""
    services = await build_services(settings, background=False)
    try:
        yield services
    finally:
        await services.close()
