"""Shared fixtures for the simulator tests: one simulator per session (reset after every test), boto3
clients built from world credentials, and a test OIDC issuer whose JWKS the simulator itself hosts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from byollm.sim import SimServer
from sim.sim_support import ACCOUNT, DEV_KEY, NO_RETRY, ClientFactory, Issuer


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimServer]:
    """The shared simulator, reset to the default world after each test."""
    yield sim_server
    sim_server.state.reset()


@pytest.fixture
def admin(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sim.url}/_sim", timeout=10) as client:
        yield client


@pytest.fixture
def client(sim: SimServer) -> ClientFactory:
    """``client("bedrock-runtime", creds=(key, secret[, token]), region="us-east-1")`` with no retries."""

    def make(service: str, creds: tuple[str, ...] = DEV_KEY, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            endpoint_url=sim.url,
            region_name=region,
            aws_access_key_id=creds[0],
            aws_secret_access_key=creds[1],
            aws_session_token=creds[2] if len(creds) > 2 else None,
            config=NO_RETRY,
        )

    return make


@pytest.fixture(scope="session")
def signing_keys() -> tuple[RSAKey, ECKey]:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
    return rsa, ec


@pytest.fixture
def issuer(sim: SimServer, admin: httpx.Client, signing_keys: tuple[RSAKey, ECKey]) -> Issuer:
    """A registered issuer (hosted at ``<sim>/_sim/issuers/<name>``) trusted by byollm-team for team-1."""
    name = f"iss-{uuid.uuid4().hex[:8]}"
    rsa, ec = signing_keys
    url = f"{sim.url}/_sim/issuers/{name}"
    found = Issuer(url=url, rsa=rsa, ec=ec, admin=admin, name=name)
    found.publish()
    admin.post(
        f"/accounts/{ACCOUNT}/web-identity-trust",
        json={"issuer": url, "role": "byollm-team", "subject": "scoped_principal:team-1/*"},
    ).raise_for_status()
    return found
