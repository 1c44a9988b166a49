"""The issuer end to end: discovery and JWKS over HTTP, tokens verified with PyJWT (an independent JOSE
library), claims for each actor type, keys sealed at rest, and one first key however many replicas start."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from byollm.crypto.kek import load_keyring
from byollm.oidc.keys import KeyManager, KeyStatus
from byollm.policy.ids import new_uid
from byollm.policy.types import Actor, ActorKind
from byollm.settings import Settings
from byollm.store import Store
from byollm.store.migrate import upgrade
from support.oidc_stack import replica_services
from support.stack import KEK, Stack


def _verify(stack: Stack, token: str) -> dict[str, Any]:
    """Verify like a relying party: discovery -> jwks_uri -> key by kid, with PyJWT."""
    discovery = httpx.get(stack.url + "/.well-known/openid-configuration", timeout=10).json()
    client = jwt.PyJWKClient(discovery["jwks_uri"], cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience="sts.amazonaws.com",
                                        issuer=discovery["issuer"],
                                        options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]})
    return claims


def test_discovery_and_jwks_are_served_with_cache_headers(stack: Stack) -> None:
    r = httpx.get(stack.url + "/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200
    assert "max-age=1" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
    doc = r.json()
    assert doc["issuer"] == stack.url
    assert doc["jwks_uri"] == stack.url + "/.well-known/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["response_types_supported"] and doc["subject_types_supported"] == ["public"]
    assert {"sub", "aud", "byollm_team", "byollm_run", "byollm_agent"} <= set(doc["claims_supported"])
    jwks = httpx.get(doc["jwks_uri"], timeout=10)
    assert jwks.status_code == 200 and "max-age=1" in jwks.headers["cache-control"]
    keys = jwks.json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" for k in keys)
    assert all("d" not in k and "p" not in k for k in keys)  # public halves only
    assert all(len(jwt.utils.base64url_decode(k["n"])) * 8 >= 2048 for k in keys)


@pytest.mark.parametrize(("kind", "with_agent", "expected_type"), [
    (ActorKind.USER_RUN, False, "user"),
    (ActorKind.USER_RUN, True, "user"),  # a user starting a named agent's run is still a user
    (ActorKind.AGENT_RUN, True, "service_account"),
])
async def test_tokens_carry_the_documented_claims(stack: Stack, kind: ActorKind, with_agent: bool,
                                                  expected_type: str) -> None:
    team_uid, principal, agent, run = new_uid(), new_uid(), new_uid(), new_uid()
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        actor = Actor(kind, principal, agent if with_agent else None)
        minted = await services.oidc.minter.mint(team_uid=team_uid, actor=actor, run_uid=run)
    header = jwt.get_unverified_header(minted.value)
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"] == minted.kid
    claims = await asyncio.to_thread(_verify, stack, minted.value)
    assert claims["iss"] == stack.url
    assert claims["sub"] == f"scoped_principal:{team_uid}/{expected_type}:{principal}"
    assert claims["aud"] == "sts.amazonaws.com"
    assert all(isinstance(claims[c], int) for c in ("iat", "nbf", "exp"))
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] == 300
    assert claims["jti"] and claims["byollm_team"] == team_uid and claims["byollm_run"] == run
    assert claims["byollm_actor_type"] == expected_type and claims["byollm_principal"] == principal
    assert claims.get("byollm_agent") == (agent if with_agent else None)


async def test_interactive_users_get_no_token(stack: Stack) -> None:
    from byollm.errors import ByollmError

    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        with pytest.raises(ByollmError) as info:
            await services.oidc.minter.mint(team_uid=new_uid(), actor=Actor(ActorKind.INTERACTIVE_USER, new_uid()))
    assert info.value.error_class.code == "role_assumption_failed"


async def test_private_keys_are_sealed_in_the_database(stack: Stack) -> None:
    async with Store.from_settings(stack.settings) as store, store.session(readonly=True) as session:
        rows = (await session.execute(text("SELECT name, ciphertext FROM secrets"))).all()
        keys = (await session.execute(text("SELECT kid, public_jwk FROM oidc_signing_keys"))).all()
    sealed = {name: blob for name, blob in rows if name.startswith("oidc_signing_key:")}
    assert keys and {f"oidc_signing_key:{kid}" for kid, _ in keys} <= set(sealed)
    for blob in sealed.values():
        assert b"PRIVATE KEY" not in blob and b"BEGIN" not in blob
    assert all('"d"' not in str(jwk) for _, jwk in keys)


async def test_replicas_starting_together_create_one_key(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEK)
    await upgrade(settings)
    keyring = load_keyring(settings)
    stores = [Store.from_settings(settings) for _ in range(4)]
    try:
        managers = [KeyManager(s, keyring, publish_delay_s=900, token_lifetime_s=300, cache_s=0) for s in stores]
        first = await asyncio.gather(*(m.ensure_active_key() for m in managers))
        assert len({r.kid for r in first}) == 1
        views = await managers[0].views(fresh=True)
        assert [v.status for v in views] == [KeyStatus.ACTIVE]
        # Two replicas noticing at once that rotation is due store one new key, not two.
        rotated = await asyncio.gather(*(m.rotate(expected_generation=1) for m in managers[:2]))
        assert {r.generation for r in rotated} == {2}
        views = await managers[0].views(fresh=True)
        assert [v.status for v in views] == [KeyStatus.ACTIVE, KeyStatus.PENDING]  # publish delay 900 s
        assert len((await managers[1].jwks())["keys"]) == 2  # published before it signs
    finally:
        for s in stores:
            await s.dispose()


async def test_build_without_public_url_still_serves_keys_and_names_the_setting(tmp_path: Path) -> None:
    from byollm.errors import ByollmError
    from byollm.services import build_services

    settings = replace(Settings.for_data_dir(tmp_path, kek=KEK), public_url=None)
    services = await build_services(settings, background=False)
    try:
        assert services.oidc is not None and services.oidc.issuer.url is None
        assert (await services.oidc.keys.jwks())["keys"]
        with pytest.raises(ByollmError) as info:
            await services.oidc.minter.mint(team_uid=new_uid(), actor=Actor(ActorKind.USER_RUN, new_uid()))
        assert info.value.error_class.code == "issuer_unreachable" and "BYOLLM_PUBLIC_URL" in info.value.detail
    finally:
        await services.close()
