"""Constants and helpers shared by the simulator tests (imported as ``sim_support``; fixtures live in
conftest.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.config import Config
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
DEV_KEY = ("AKIASIMDEV0000000001", "simDevSecretKey0000000000000000000000001")
OTHER_KEY = ("AKIASIMOTHER00000001", "simOtherSecretKey000000000000000000000001")
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
OPUS47 = "anthropic.claude-opus-4-7-v1:0"
SONNET46 = "anthropic.claude-sonnet-4-6-v1:0"
OPUS41 = "anthropic.claude-opus-4-1-20250805-v1:0"
TEAM_ROLE = f"arn:aws:iam::{ACCOUNT}:role/byollm-team"
AGENT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/byollm-agent"
NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5)

ClientFactory = Callable[..., Any]


def claude_body(text: str = "hello simulator", **extra: Any) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    )


@dataclass
class Issuer:
    """A test OIDC issuer: signing keys, JWKS hosted by the simulator, token minting."""

    url: str
    rsa: RSAKey
    ec: ECKey
    admin: httpx.Client
    name: str

    def publish(self, *keys: RSAKey | ECKey) -> None:
        jwks = {"keys": [k.as_dict(private=False) for k in (keys or (self.rsa, self.ec))]}
        self.admin.put(f"/issuers/{self.name}", json=jwks).raise_for_status()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": "sts.amazonaws.com",
            "sub": "scoped_principal:team-1/user:alice",
            "iat": now,
            "exp": now + 600,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, *, alg: str = "RS256", kid: str | None = None, key: Any = None, **claims: Any) -> str:
        signing = key or (self.ec if alg.startswith("ES") else self.rsa)
        header = {"alg": alg, "kid": kid or signing.kid, "typ": "JWT"}
        return jwt.encode(header, self.claims(**claims), signing, algorithms=[alg])
