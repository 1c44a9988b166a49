"""OIDC ID-token validation as IAM does it for AssumeRoleWithWebIdentity.

Order of checks (each failure maps to the STS error code real AWS uses):

1. The token is a compact JWS with JSON header and claims → else ``InvalidIdentityToken``. A member named
   twice in the header or the claims is refused: parsers disagree on which copy wins (a signed payload
   naming two ``sub`` values would be read differently by the trust policy and by anyone auditing it).
2. ``alg`` is RS256/384/512 or ES256/384/512 (``none`` and HS* are refused) → ``InvalidIdentityToken``;
   a ``crit`` header is refused (IAM implements no JWS extension, and RFC 7515 requires rejecting a token
   whose critical extensions are not understood; an empty list is malformed).
3. ``iss``, ``aud``, ``sub``, ``exp``, ``iat`` are present; ``exp``/``iat``/``nbf`` are integers.
4. ``iss`` equals the URL of an OIDC provider registered in the role's account, exactly (a trailing slash
   of difference is a different provider) → "No OpenIDConnect provider found in your account for <iss>".
5. ``aud`` (string or list) contains one of the provider's client IDs → "Incorrect token audience".
6. Discovery ``<iss>/.well-known/openid-configuration`` → ``jwks_uri`` → JWKS, fetched over HTTP with a
   short timeout; unreachable or unusable → ``IDPCommunicationError``. The JWKS is cached briefly (the
   state's ``jwks_max_age_s``, or a shorter ``Cache-Control: max-age``); an unknown ``kid`` forces one
   refetch before it is refused ("Couldn't retrieve verification key …").
7. The signature verifies with that key → else ``InvalidIdentityToken``.
8. ``exp`` is in the future → else ``ExpiredTokenException``; ``nbf``/``iat`` are not in the future
   → else ``IDPRejectedClaim``.

Trust-policy evaluation happens in ``byollm.sim.sts`` with the context built by ``condition_context``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from byollm.sim.state import SimState
from byollm.sim.world import Account, OidcProvider

__all__ = ["ALLOWED_ALGS", "ValidatedToken", "WebIdentityError", "WebIdentityValidator", "condition_context"]

ALLOWED_ALGS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
FETCH_TIMEOUT_S = 3.0
_MAX_FUTURE_SKEW_S = 300

_INVALID = (
    "The web identity token that was passed could not be validated by AWS. Get a new identity token from the "
    "identity provider and then retry the request."
)
_NO_KEY = (
    "Couldn't retrieve verification key from your identity provider, please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)
_UNREACHABLE = (
    "The request could not be fulfilled because the identity provider (IDP) that was asked to verify the "
    "incoming identity token could not be reached. Retry the request after some time."
)
_MAX_AGE = re.compile(r"max-age=(\d+)")


class WebIdentityError(Exception):
    """Token refused; ``code`` is the STS error code (InvalidIdentityToken, ExpiredTokenException, …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    claims: dict[str, Any]
    provider: OidcProvider
    audience: str


def condition_context(token: ValidatedToken) -> dict[str, list[str]]:
    """Trust-policy condition keys for a token: ``HOST[/PATH]:sub``, ``:aud``, ``:amr`` (lower-cased)."""
    prefix = token.provider.host_path.lower()
    ctx = {f"{prefix}:sub": [str(token.claims["sub"])], f"{prefix}:aud": [token.audience]}
    amr = token.claims.get("amr")
    if isinstance(amr, str):
        ctx[f"{prefix}:amr"] = [amr]
    elif isinstance(amr, list):
        ctx[f"{prefix}:amr"] = [str(v) for v in amr]
    return ctx


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("a member is named twice")
    return data


def _b64json(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    data = json.loads(raw, object_pairs_hook=_unique_members)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class WebIdentityValidator:
    """Validates web identity tokens against the OIDC providers of an account in a ``SimState``."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    async def validate(self, token: str, account: Account) -> ValidatedToken:
        header, claims = self._parse(token)
        provider = self._provider(claims, account)
        audience = self._audience(claims, provider)
        jwk, from_cache = await self._key(provider, header, refresh=False)
        if not self._signature_ok(token, jwk, header["alg"]):
            # The key may have been replaced under the same kid: look again once before refusing.
            if not from_cache:
                raise WebIdentityError("InvalidIdentityToken", _INVALID)
            jwk, _ = await self._key(provider, header, refresh=True)
            if not self._signature_ok(token, jwk, header["alg"]):
                raise WebIdentityError("InvalidIdentityToken", _INVALID)
        self._check_times(claims)
        sub = str(claims["sub"])
        if not 6 <= len(sub) <= 255:
            raise WebIdentityError("InvalidIdentityToken", "The sub claim must be between 6 and 255 characters")
        return ValidatedToken(claims=claims, provider=provider, audience=audience)

    @staticmethod
    def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = token.split(".")
        if len(parts) != 3:
            raise WebIdentityError("InvalidIdentityToken", _INVALID)
        try:
            header = _b64json(parts[0])
            claims = _b64json(parts[1])
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly nested JSON
            raise WebIdentityError("InvalidIdentityToken", _INVALID) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise WebIdentityError(
                "InvalidIdentityToken", f"Unsupported signing algorithm {alg!s}; IAM accepts RS* and ES* only"
            )
        if "crit" in header:
            raise WebIdentityError("InvalidIdentityToken", _INVALID)
        for claim in ("iss", "aud", "sub", "exp", "iat"):
            if claim not in claims:
                raise WebIdentityError("InvalidIdentityToken", f"The token is missing the required claim '{claim}'")
        for claim in ("exp", "iat", "nbf"):
            if claim in claims and not _is_int(claims[claim]):
                raise WebIdentityError("InvalidIdentityToken", f"The '{claim}' claim must be an integer")
        return header, claims

    @staticmethod
    def _provider(claims: Mapping[str, Any], account: Account) -> OidcProvider:
        iss = claims["iss"]
        if not isinstance(iss, str):
            raise WebIdentityError("InvalidIdentityToken", _INVALID)
        for provider in account.oidc_providers.values():
            if provider.url == iss:
                return provider
        shown = iss if "://" in iss else f"https://{iss}"
        raise WebIdentityError("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {shown}")

    @staticmethod
    def _audience(claims: Mapping[str, Any], provider: OidcProvider) -> str:
        aud = claims["aud"]
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        for candidate in auds:
            if isinstance(candidate, str) and candidate in provider.client_ids:
                return candidate
        raise WebIdentityError("InvalidIdentityToken", "Incorrect token audience")

    @staticmethod
    def _signature_ok(token: str, jwk: Mapping[str, Any], alg: str) -> bool:
        try:
            jws.deserialize_compact(token, KeySet.import_key_set({"keys": [dict(jwk)]}), algorithms=[alg])
        except (JoseError, ValueError, TypeError, KeyError):
            return False
        return True

    async def _key(
        self, provider: OidcProvider, header: Mapping[str, Any], *, refresh: bool
    ) -> tuple[dict[str, Any], bool]:
        """The JWK for the token's kid and whether it came from the cache (an unknown kid forces a refetch)."""
        cached = None if refresh else self._state.jwks_cache.get(provider.url, self._state.clock())
        jwks = cached if cached is not None else await self._fetch_jwks(provider)
        key = self._select(jwks, header)
        if key is None and cached is not None:
            jwks = await self._fetch_jwks(provider)
            key = self._select(jwks, header)
            cached = None
        if key is None:
            raise WebIdentityError("InvalidIdentityToken", _NO_KEY)
        return key, cached is not None

    @staticmethod
    def _select(jwks: Mapping[str, Any], header: Mapping[str, Any]) -> dict[str, Any] | None:
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
        kid = header.get("kid")
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        for key in keys:
            if key.get("kid") == kid:
                return key
        return None

    async def _fetch_jwks(self, provider: OidcProvider) -> dict[str, Any]:
        discovery_url = provider.url.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
                disc = await client.get(discovery_url)
                disc.raise_for_status()
                jwks_uri = disc.json().get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise WebIdentityError("InvalidIdentityToken", _NO_KEY)
                resp = await client.get(jwks_uri)
                resp.raise_for_status()
                jwks = resp.json()
        except httpx.HTTPError:
            raise WebIdentityError("IDPCommunicationError", _UNREACHABLE) from None
        except ValueError:
            raise WebIdentityError("InvalidIdentityToken", _NO_KEY) from None
        if not isinstance(jwks, dict):
            raise WebIdentityError("InvalidIdentityToken", _NO_KEY)
        max_age = self._state.jwks_max_age_s
        match = _MAX_AGE.search(resp.headers.get("cache-control", ""))
        if match:
            max_age = min(max_age, float(match.group(1)))
        self._state.jwks_cache.put(provider.url, jwks, self._state.clock(), max_age)
        return jwks

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = int(self._state.clock())
        exp = int(claims["exp"])
        if exp <= now:
            raise WebIdentityError(
                "ExpiredTokenException",
                f"Token expired: current date/time {now} must be before the expiration date/time {exp}",
            )
        nbf = claims.get("nbf")
        if nbf is not None and int(nbf) > now + _MAX_FUTURE_SKEW_S:
            raise WebIdentityError("IDPRejectedClaim", "Token is not yet valid (nbf is in the future)")
        if int(claims["iat"]) > now + _MAX_FUTURE_SKEW_S:
            raise WebIdentityError("IDPRejectedClaim", "Token was issued in the future (iat)")
