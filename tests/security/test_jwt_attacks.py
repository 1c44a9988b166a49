"""JWT attacks against byollm's web-identity tokens, presented to the simulator's STS with boto3.

The simulator's ``AssumeRoleWithWebIdentity`` (``byollm.sim.webidentity``) must refuse every forged or
doctored token with the error code real STS returns (``aws-facts.md``): a verifier that accepts what AWS
refuses would let byollm ship a setup that works locally and fails in the customer's account, or hide a
token bug of byollm's own. Each attack starts from a real token minted by byollm's issuer (or from byollm's
real signing key, for claims that only a correct signature can carry to the claim checks), so the baseline
exchange succeeds and every refusal is caused by the one thing the attack changed.

Also checked: properties of byollm's own tokens and JWKS (RS256, ``kid``, no private members, bounded
lifetime, the documented ``sub`` format).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc.jwk import RSAKey

from byollm.policy.ids import new_uid
from byollm.policy.types import Actor, ActorKind
from support.oidc_stack import make_role, replica_services, running_oidc_stack
from support.stack import ACCOUNT, Stack

SUB = re.compile(r"^scoped_principal:(?P<team>[A-Za-z0-9]{22})/(?P<type>user|service_account):(?P<p>[A-Za-z0-9]{22})$")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


# --- JOSE by hand: every byte of an attack token is chosen by the test ------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: dict[str, Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def _rs256(key: rsa.RSAPrivateKey, header: dict[str, Any] | bytes, claims: dict[str, Any] | bytes) -> str:
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, c, s = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4))),
            json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4))), s)


def _public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def enc(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": enc(numbers.n), "e": enc(numbers.e)}


# --- the stack: byollm's issuer, a role trusting one team, an attacker's own registered issuer -------------


@dataclass
class Arena:
    stack: Stack
    team_uid: str
    role_arn: str
    token: str  # a genuine token byollm minted for team_uid
    key: rsa.RSAPrivateKey  # byollm's active signing key (to carry crafted claims past the signature check)
    kid: str
    other_kid: str  # a second key published in byollm's JWKS (pending: it does not sign)
    public_pem: bytes
    jwks: dict[str, Any]
    attacker: rsa.RSAPrivateKey
    attacker_issuer: str  # registered in the account as an OIDC provider, trusted by another role

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {"iss": self.stack.url, "sub": f"scoped_principal:{self.team_uid}/user:{new_uid()}",
                                "aud": "sts.amazonaws.com", "iat": now, "nbf": now, "exp": now + 300,
                                "jti": secrets.token_urlsafe(12), "byollm_team": self.team_uid}
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def signed(self, header: dict[str, Any] | None = None, **changes: Any) -> str:
        """A token with byollm's real key and kid, carrying the given claim changes (None removes a claim)."""
        return _rs256(self.key, header or {"alg": "RS256", "typ": "JWT", "kid": self.kid}, self.claims(**changes))


def _sts(stack: Stack) -> Any:
    return boto3.client("sts", region_name="us-east-1", endpoint_url=stack.sim.url,
                        aws_access_key_id="unused", aws_secret_access_key="unused",
                        config=Config(retries={"max_attempts": 1}))


def _exchange(arena: Arena, token: str, role_arn: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = _sts(arena.stack).assume_role_with_web_identity(
        RoleArn=role_arn or arena.role_arn, RoleSessionName="jwt-attack", WebIdentityToken=token)
    return answer


def _refused(arena: Arena, token: str, role_arn: str | None = None) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        _exchange(arena, token, role_arn)
    error = info.value.response
    return str(error["Error"]["Code"]), int(error["ResponseMetadata"]["HTTPStatusCode"])


async def _mint_and_key(stack: Stack, team_uid: str) -> tuple[str, RSAKey, str]:
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        minted = await services.oidc.minter.mint(team_uid=team_uid, actor=Actor(ActorKind.USER_RUN, new_uid()),
                                                 run_uid=new_uid())
        key = await services.oidc.keys.signing_key()
    return minted.value, key.private, key.kid


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("jwt"))) as stack:
        team_uid = new_uid()
        role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"])
        token, private, kid = asyncio.run(_mint_and_key(stack, team_uid))
        key = serialization.load_pem_private_key(private.as_pem(private=True), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        # a second, pending key: published in the JWKS, never signing during this module
        r = stack.admin.post("/operator/signing-keys/rotate", json={"publish_delay_seconds": 3600})
        assert r.status_code == 200, r.text
        jwks = httpx.get(stack.url + "/.well-known/jwks.json", timeout=10).json()
        other_kid = next(k["kid"] for k in jwks["keys"] if k["kid"] != kid)
        attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        r = stack.sim_http.put("/_sim/issuers/attacker", json={"keys": [_public_jwk(attacker, "evil-1")]})
        assert r.status_code == 200, r.text
        attacker_issuer = str(r.json()["issuer"])
        make_role(stack, subjects=["*"], issuer=attacker_issuer)  # registers the attacker's provider too
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        yield Arena(stack=stack, team_uid=team_uid, role_arn=role, token=token, key=key, kid=kid,
                    other_kid=other_kid, public_pem=public_pem, jwks=jwks, attacker=attacker,
                    attacker_issuer=attacker_issuer)


# --- baseline: the genuine token and a crafted-but-correct one are accepted ----------------------------------


def test_genuine_and_correctly_signed_tokens_are_accepted(arena: Arena) -> None:
    answer = _exchange(arena, arena.token)
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert answer["SubjectFromWebIdentityToken"].startswith(f"scoped_principal:{arena.team_uid}/user:")
    assert _exchange(arena, arena.signed())["Credentials"]["SessionToken"]  # the crafting itself is sound


# --- signature, algorithm and key-selection attacks ---------------------------------------------------------


def _header(arena: Arena, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": arena.kid}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def _attacks(arena: Arena) -> dict[str, str]:
    """Name -> token; each must come back InvalidIdentityToken (400)."""
    h, c, s = arena.token.split(".")
    header, claims, _ = _parts(arena.token)
    other_team = {**claims, "sub": f"scoped_principal:{new_uid()}/user:{new_uid()}"}
    attacker_jwk = _public_jwk(arena.attacker, arena.kid)
    return {
        "alg none, no signature": f"{_b64(_json(_header(arena, alg='none')))}.{c}.",
        "alg None (case variant)": f"{_b64(_json(_header(arena, alg='None')))}.{c}.",
        "alg none with the old signature": f"{_b64(_json(_header(arena, alg='none')))}.{c}.{s}",
        "HS256 keyed with the RSA public key": _hs256(arena.public_pem, _header(arena, alg="HS256"), claims),
        "HMAC signature under an RS256 header": _hs256(arena.public_pem, header, claims),
        "ES256 header on an RSA signature": f"{_b64(_json(_header(arena, alg='ES256')))}.{c}.{s}",
        "signature stripped": f"{h}.{c}.",
        "signature altered": f"{h}.{c}.{s[:-6]}{'AAAAAA' if not s.endswith('AAAAAA') else 'BBBBBB'}",
        "signature of another token": f"{h}.{c}.{arena.signed().split('.')[2]}",
        "two segments": f"{h}.{c}",
        "four segments": f"{h}.{c}.{s}.{s}",
        "not base64 JSON": f"{h}.!!!.{s}",
        "payload tampered: sub to another team": f"{h}.{_b64(_json(other_team))}.{s}",
        "payload tampered: aud": f"{h}.{_b64(_json({**claims, 'aud': 'other-audience'}))}.{s}",
        "payload tampered: exp extended": f"{h}.{_b64(_json({**claims, 'exp': claims['exp'] + 86400}))}.{s}",
        "kid of the other published key": f"{_b64(_json(_header(arena, kid=arena.other_kid)))}.{c}.{s}",
        "unknown kid": f"{_b64(_json(_header(arena, kid='no-such-key')))}.{c}.{s}",
        "kid removed (two keys published)": f"{_b64(_json(_header(arena, kid=None)))}.{c}.{s}",
        "attacker key under byollm's kid": _rs256(arena.attacker, _header(arena), claims),
        "jwk header: attacker key embedded": _rs256(arena.attacker, _header(arena, jwk=attacker_jwk), claims),
        "jwk header, no kid": _rs256(arena.attacker, _header(arena, kid=None, jwk=attacker_jwk), claims),
        "jku header: attacker's JWKS": _rs256(arena.attacker, _header(
            arena, kid="evil-1", jku=f"{arena.attacker_issuer}/jwks.json"), claims),
        "x5u header": _rs256(arena.attacker, _header(arena, x5u=f"{arena.attacker_issuer}/cert.pem"), claims),
        "attacker signs claiming byollm as issuer": _rs256(arena.attacker, _header(arena, kid="evil-1"), claims),
        "iss of an unregistered issuer": arena.signed(iss="https://evil.example"),
        "iss tampered to the attacker's (byollm's signature)":
            f"{h}.{_b64(_json({**claims, 'iss': arena.attacker_issuer}))}.{s}",
        "aud not a client id (validly signed)": arena.signed(aud="https://evil.example"),
        "aud list without a client id": arena.signed(aud=["a", "b"]),
        "missing iss": arena.signed(iss=None),
        "missing aud": arena.signed(aud=None),
        "missing sub": arena.signed(sub=None),
        "missing exp": arena.signed(exp=None),
        "missing iat": arena.signed(iat=None),
        "exp as a string": arena.signed(exp=str(int(time.time()) + 300)),
        "iat as a float": arena.signed(iat=time.time()),
        "sub too short": arena.signed(sub="a"),
        "crit header naming an unknown extension": arena.signed(
            header=_header(arena, crit=["x-byollm-unknown"], **{"x-byollm-unknown": True})),
        "crit header empty": arena.signed(header=_header(arena, crit=[])),
        "payload not an object": _rs256(arena.key, _header(arena), b'["not", "an", "object"]'),
        "header not an object": _rs256(arena.key, b'"RS256"', arena.claims()),
        "alg as a list": arena.signed(header=_header(arena, alg=["RS256"])),
        "duplicate sub in the payload": _rs256(arena.key, _header(arena), _duplicate_sub(arena)),
        "duplicate alg in the header": _rs256(
            arena.key, f'{{"alg":"none","kid":"{arena.kid}","alg":"RS256"}}'.encode(), arena.claims()),
    }


def _duplicate_sub(arena: Arena) -> bytes:
    """A correctly signed payload naming two subjects: a parser that keeps the first sees another team, one
    that keeps the last sees the trusted one. IAM must not pick; refusing is the only safe answer."""
    claims = arena.claims()
    body = json.dumps(claims, separators=(",", ":"))
    foreign = f"scoped_principal:{new_uid()}/user:{new_uid()}"
    return ('{"sub":"' + foreign + '",' + body[1:]).encode()


ATTACK_NAMES = [
    "alg none, no signature", "alg None (case variant)", "alg none with the old signature",
    "HS256 keyed with the RSA public key", "HMAC signature under an RS256 header",
    "ES256 header on an RSA signature", "signature stripped", "signature altered", "signature of another token",
    "two segments", "four segments", "not base64 JSON", "payload tampered: sub to another team",
    "payload tampered: aud", "payload tampered: exp extended", "kid of the other published key", "unknown kid",
    "kid removed (two keys published)", "attacker key under byollm's kid", "jwk header: attacker key embedded",
    "jwk header, no kid", "jku header: attacker's JWKS", "x5u header", "attacker signs claiming byollm as issuer",
    "iss of an unregistered issuer", "iss tampered to the attacker's (byollm's signature)",
    "aud not a client id (validly signed)", "aud list without a client id", "missing iss", "missing aud",
    "missing sub", "missing exp", "missing iat", "exp as a string", "iat as a float", "sub too short",
    "crit header naming an unknown extension", "crit header empty", "payload not an object",
    "header not an object", "alg as a list",
    "duplicate sub in the payload", "duplicate alg in the header",
]


def test_the_attack_list_is_complete(arena: Arena) -> None:
    assert sorted(_attacks(arena)) == sorted(ATTACK_NAMES)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_forged_or_doctored_tokens_are_invalid_identity_tokens(arena: Arena, name: str) -> None:
    assert _refused(arena, _attacks(arena)[name]) == ("InvalidIdentityToken", 400)


# --- claims that need a correct signature to be looked at at all -------------------------------------------


def test_expired_token_is_expired_token_exception(arena: Arena) -> None:
    now = int(time.time())
    assert _refused(arena, arena.signed(iat=now - 900, nbf=now - 900, exp=now - 1)) == ("ExpiredTokenException", 400)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_or_issued_in_the_future_is_rejected_claim(arena: Arena, claim: str) -> None:
    future = int(time.time()) + 3600
    token = _rs256(arena.key, _header(arena), arena.claims(**{claim: future, "exp": future + 300}))
    assert _refused(arena, token) == ("IDPRejectedClaim", 403)


def test_small_clock_skew_is_tolerated(arena: Arena) -> None:
    """IAM tolerates a few minutes of skew between the issuer's clock and its own (not a refusal case)."""
    soon = int(time.time()) + 30
    assert _exchange(arena, arena.signed(iat=soon, nbf=soon))["Credentials"]["SessionToken"]


def test_a_validly_signed_token_for_another_team_is_access_denied(arena: Arena) -> None:
    token = arena.signed(sub=f"scoped_principal:{new_uid()}/user:{new_uid()}")
    assert _refused(arena, token) == ("AccessDenied", 403)


def test_a_token_of_another_registered_issuer_with_its_own_valid_signature_is_access_denied(arena: Arena) -> None:
    """The attacker's issuer is a registered provider of the account, so its token validates; but the role
    trusts byollm's provider only, and the trust policy decides."""
    now = int(time.time())
    claims = {"iss": arena.attacker_issuer, "sub": f"scoped_principal:{arena.team_uid}/user:{new_uid()}",
              "aud": "sts.amazonaws.com", "iat": now, "exp": now + 300}
    token = _rs256(arena.attacker, {"alg": "RS256", "kid": "evil-1"}, claims)
    assert _refused(arena, token) == ("AccessDenied", 403)


def test_oversized_token_is_a_validation_error(arena: Arena) -> None:
    padded = arena.signed(pad="x" * 20_500)
    assert len(padded) > 20_000
    assert _refused(arena, padded) == ("ValidationError", 400)


def test_the_role_of_another_account_is_refused(arena: Arena) -> None:
    """An account without byollm's provider: the token is refused as if its issuer were unregistered."""
    code, status = _refused(arena, arena.token, role_arn="arn:aws:iam::999988887777:role/byollm-team")
    assert (code, status) == ("InvalidIdentityToken", 400)
    assert ACCOUNT != "999988887777"


# --- byollm's own tokens and JWKS ------------------------------------------------------------------------------


def test_byollm_tokens_and_jwks_have_the_required_properties(arena: Arena) -> None:
    header, claims, _ = _parts(arena.token)
    assert header["alg"] == "RS256" and header["kid"] == arena.kid and header.get("typ") == "JWT"
    assert not {"jku", "x5u", "jwk", "x5c", "crit"} & set(header)
    match = SUB.match(claims["sub"])
    assert match is not None, claims["sub"]
    assert match["team"] == arena.team_uid == claims["byollm_team"]
    assert match["p"] == claims["byollm_principal"] and match["type"] == claims["byollm_actor_type"]
    assert claims["iss"] == arena.stack.url and claims["aud"] == "sts.amazonaws.com"
    assert all(isinstance(claims[c], int) for c in ("iat", "nbf", "exp"))
    lifetime = claims["exp"] - claims["iat"]
    assert 0 < lifetime <= arena.stack.settings.oidc_token_lifetime_seconds <= 3600
    assert abs(claims["iat"] - time.time()) < 120 and claims["nbf"] <= claims["iat"]
    assert len(claims["jti"]) >= 16
    keys = arena.jwks["keys"]
    assert len(keys) == 2 and {k["kid"] for k in keys} == {arena.kid, arena.other_kid}
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
        assert not PRIVATE_MEMBERS & set(key), sorted(key)
        assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 >= 2048
    discovery = httpx.get(arena.stack.url + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
