"""Key rotation: a new key is published before it signs; tokens signed by the old key still verify (and STS
still accepts them) until they expire; the old key leaves the JWKS once no token it signed can be valid;
``byollm keys rotate`` / ``list`` through the admin API; automatic rotation stores one key across replicas."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from byollm.cli.main import app
from byollm.crypto.kek import load_keyring
from byollm.oidc.issuer import Issuer
from byollm.oidc.keys import KeyManager, KeyStatus
from byollm.oidc.rotation import RotationTask
from byollm.oidc.tokens import TokenMinter
from byollm.policy.ids import new_uid
from byollm.policy.types import Actor, ActorKind
from byollm.settings import Settings
from byollm.store import Store
from byollm.store.migrate import upgrade
from byollm.store.tables import utcnow
from support.oidc_stack import make_role
from support.stack import KEK, Stack


def _kids_served(stack: Stack) -> set[str]:
    return {k["kid"] for k in httpx.get(stack.url + "/.well-known/jwks.json", timeout=10).json()["keys"]}


def _pyjwt_verify(stack: Stack, token: str) -> dict[str, Any]:
    client = jwt.PyJWKClient(stack.url + "/.well-known/jwks.json", cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return dict(jwt.decode(token, key.key, algorithms=["RS256"], audience="sts.amazonaws.com", leeway=0))


def _sts(stack: Stack, role: str, token: str) -> httpx.Response:
    return stack.sim_http.post("/", data={
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role,
        "RoleSessionName": "rotation-test", "WebIdentityToken": token})


async def test_old_tokens_stay_valid_until_they_expire_and_new_tokens_use_the_new_key(stack: Stack) -> None:
    team_uid = new_uid()
    role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"])
    actor = Actor(ActorKind.USER_RUN, new_uid())
    async with Store.from_settings(stack.settings) as store:
        keys = KeyManager(store, load_keyring(stack.settings), publish_delay_s=0, token_lifetime_s=2, cache_s=0)
        minter = TokenMinter(Issuer(stack.url, keys, audience="sts.amazonaws.com", max_age_s=1), keys, lifetime_s=2)
        old = await keys.rotate(publish_delay_s=0)  # a key whose tokens live 2 s
        token_a = await minter.mint(team_uid=team_uid, actor=actor, run_uid=new_uid())
        new = await keys.rotate(publish_delay_s=0)
        token_b = await minter.mint(team_uid=team_uid, actor=actor, run_uid=new_uid())
        assert (token_a.kid, token_b.kid) == (old.kid, new.kid) and old.kid != new.kid
        assert {old.kid, new.kid} <= await asyncio.to_thread(_kids_served, stack)
        for token in (token_a, token_b):
            claims = await asyncio.to_thread(_pyjwt_verify, stack, token.value)
            assert claims["sub"] == f"scoped_principal:{team_uid}/user:{actor.principal_uid}"
            r = await asyncio.to_thread(_sts, stack, role, token.value)
            assert r.status_code == 200, r.text
        await asyncio.sleep(max(0.0, token_a.expires_at - utcnow().timestamp()) + 1.1)
        r = await asyncio.to_thread(_sts, stack, role, token_a.value)
        assert r.status_code == 400 and "ExpiredTokenException" in r.text
        views = {v.kid: v for v in await keys.views(fresh=True)}
        assert views[old.kid].status is KeyStatus.RETIRED  # still published: the clock-skew margin
        assert views[old.kid].unpublish_at == new.activate_at + timedelta(seconds=2 + 60)
        later = KeyManager(store, load_keyring(stack.settings), publish_delay_s=0, token_lifetime_s=2, cache_s=0,
                           clock=lambda: utcnow() + timedelta(seconds=70))
        assert old.kid in await later.prune()
        served = await asyncio.to_thread(_kids_served, stack)
        assert old.kid not in served and new.kid in served


async def test_a_new_key_is_published_before_it_signs(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEK)
    await upgrade(settings)
    now = [utcnow()]
    async with Store.from_settings(settings) as store:
        keys = KeyManager(store, load_keyring(settings), publish_delay_s=600, token_lifetime_s=300, cache_s=0,
                          clock=lambda: now[0])
        first = await keys.ensure_active_key()
        pending = await keys.rotate()
        assert (await keys.signing_key()).kid == first.kid
        assert {k["kid"] for k in (await keys.jwks())["keys"]} == {first.kid, pending.kid}
        now[0] += timedelta(seconds=601)
        assert (await keys.signing_key()).kid == pending.kid
        statuses = [v.status for v in await keys.views()]
        assert statuses == [KeyStatus.RETIRED, KeyStatus.ACTIVE]


async def test_automatic_rotation_stores_one_key_across_replicas(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEK)
    await upgrade(settings)
    now = [utcnow()]
    stores = [Store.from_settings(settings) for _ in range(3)]
    try:
        managers = [KeyManager(s, load_keyring(settings), publish_delay_s=10, token_lifetime_s=300, cache_s=0,
                               clock=lambda: now[0]) for s in stores]
        tasks = [RotationTask(m, interval_s=3600, clock=lambda: now[0]) for m in managers]
        assert not any(await asyncio.gather(*(t.run_once() for t in tasks)))  # first key only
        now[0] += timedelta(seconds=3601)
        rotated = await asyncio.gather(*(t.run_once() for t in tasks))
        assert sum(rotated) == 1
        assert [v.status for v in await managers[0].views(fresh=True)] == [KeyStatus.ACTIVE, KeyStatus.PENDING]
    finally:
        for s in stores:
            await s.dispose()


def _cli(stack: Stack, token: str, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env={"BYOLLM_URL": stack.url, "BYOLLM_TOKEN": token})
    return result


def test_keys_rotate_and_list_commands(stack: Stack) -> None:
    before = _cli(stack, stack.operator, "keys", "signing-list")
    assert before.exit_code == 0, before.output
    rows = json.loads(before.output)
    rotated = _cli(stack, stack.operator, "keys", "rotate", "--publish-delay", "3600")
    assert rotated.exit_code == 0, rotated.output
    after = json.loads(rotated.output)
    assert len(after) == len(rows) + 1 and after[-1]["status"] == "pending"
    assert after[-1]["kid"] in _kids_served(stack)  # published at once, signing in an hour
    team = stack.new_team({})
    refused = _cli(stack, team.token, "keys", "rotate")
    assert refused.exit_code == 1 and "forbidden" in refused.output


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_issuer_documents_need_no_token(stack: Stack, path: str) -> None:
    assert httpx.get(stack.url + path, timeout=10).status_code == 200
