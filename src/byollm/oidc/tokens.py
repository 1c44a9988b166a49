"""Minting web-identity tokens: short-lived RS256 JWTs naming the team, the actor and the run.

Claims (all timestamps integers, as IAM requires)::

    iss  the issuer URL             sub  scoped_principal:<team-uid>/<actor-type>:<principal-uid>
    aud  the audience (sts.amazonaws.com by default)
    iat = nbf = now                 exp  now + lifetime (300 s by default)      jti  random, unique
    byollm_team, byollm_actor_type, byollm_principal, byollm_agent (named agent or absent),
    byollm_run (run UID, or absent for an agent calling the gateway directly)

The actor type is ``user`` when a user started the run (also a run of a named agent) and
``service_account`` when a named agent's own trigger started it (its service-account token, a schedule);
the principal is whoever started it. The trust policy pins ``sub`` to ``scoped_principal:<team-uid>/*``, so
one team's tokens can never assume another team's role. A ``MintedToken`` never shows its value in ``repr``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from joserfc import jwt

from byollm.errors import ByollmError, ErrorClass
from byollm.oidc.issuer import Issuer
from byollm.oidc.keys import ALG, KeyManager
from byollm.policy.types import Actor, ActorKind, ActorType
from byollm.store.tables import utcnow

__all__ = ["MintedToken", "TokenMinter", "actor_type_of", "subject_for"]


def actor_type_of(actor: Actor) -> ActorType:
    """``user`` for a user-started run, ``service_account`` for a named agent's own trigger."""
    if actor.kind is ActorKind.USER_RUN:
        return ActorType.USER
    if actor.kind is ActorKind.AGENT_RUN:
        return ActorType.SERVICE_ACCOUNT
    raise ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                      "web-identity tokens are issued to cloud runs and agents only, not to interactive users")


def subject_for(team_uid: str, actor: Actor) -> str:
    return f"scoped_principal:{team_uid}/{actor_type_of(actor).value}:{actor.principal_uid}"


@dataclass(frozen=True, slots=True)
class MintedToken:
    value: str = field(repr=False)
    kid: str
    jti: str
    subject: str
    issued_at: int
    expires_at: int


class TokenMinter:
    def __init__(self, issuer: Issuer, keys: KeyManager, *, lifetime_s: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._issuer = issuer
        self._keys = keys
        self._lifetime_s = lifetime_s
        self._clock = clock

    @property
    def issuer(self) -> Issuer:
        return self._issuer

    async def mint(self, *, team_uid: str, actor: Actor, run_uid: str | None = None) -> MintedToken:
        iss = self._issuer.require_url()
        subject = subject_for(team_uid, actor)
        key = await self._keys.signing_key()
        now = int(self._clock().astimezone(UTC).timestamp())
        lifetime = max(1, min(self._lifetime_s, key.token_lifetime_seconds))
        jti = secrets.token_urlsafe(18)
        claims: dict[str, object] = {
            "iss": iss, "sub": subject, "aud": self._issuer.audience, "iat": now, "nbf": now,
            "exp": now + lifetime, "jti": jti, "byollm_team": team_uid,
            "byollm_actor_type": actor_type_of(actor).value, "byollm_principal": actor.principal_uid,
        }
        if actor.agent_uid is not None:
            claims["byollm_agent"] = actor.agent_uid
        if run_uid is not None:
            claims["byollm_run"] = run_uid
        value = jwt.encode({"alg": ALG, "typ": "JWT", "kid": key.kid}, claims, key.private, algorithms=[ALG])
        return MintedToken(value=value, kid=key.kid, jti=jti, subject=subject, issued_at=now,
                           expires_at=now + lifetime)
