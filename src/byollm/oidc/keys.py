"""The issuer's signing keys: creation, the publish-before-sign schedule, rotation and pruning.

Why this shape: every replica must sign with a key every other replica publishes, so the database is the
only source of truth (``store.signing_keys``); a replica keeps a short-lived copy of the key list
(``cache_s``) and the decrypted private keys it has used. Keys form one sequence of generations, unique in
the database, so two replicas creating "the next key" at once cannot both succeed: the loser re-reads.

The schedule, computed from the rows alone (``schedule``):

- a key is published (in the JWKS) from the moment it is stored;
- the key that signs is the newest generation whose ``activate_at`` has passed; a rotated-in key gets
  ``activate_at = now + publish_delay``, and the delay exceeds the JWKS ``max-age`` plus ``cache_s``, so
  every verifier that cached the JWKS already knows a key before the first token signed by it exists;
- a key stops signing when a newer key activates, and stays published until every token it could have
  signed has expired (its ``token_lifetime_seconds`` plus a clock-skew margin); after that it is pruned.

The very first key activates at once: no token exists yet, so nobody can hold a JWKS without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from joserfc.jwk import RSAKey

from byollm.crypto.kek import KeyRing
from byollm.errors import ByollmError, ErrorClass
from byollm.store import Store
from byollm.store.errors import ConflictError, NotFoundError
from byollm.store.signing_keys import (
    SigningKeyRecord,
    delete_signing_keys,
    insert_signing_key,
    list_signing_keys,
    max_generation,
    read_private_key,
)
from byollm.store.tables import utcnow

__all__ = [
    "CLOCK_SKEW",
    "RSA_KEY_BITS",
    "KeyManager",
    "KeyStatus",
    "KeyView",
    "SigningKey",
    "generate_key",
    "schedule",
]

log = logging.getLogger("byollm.oidc.keys")

RSA_KEY_BITS = 2048
ALG = "RS256"
CLOCK_SKEW = timedelta(seconds=60)
"""Margin for verifiers whose clocks run behind ours: a retired key stays published this much longer."""


class KeyStatus(StrEnum):
    PENDING = "pending"  # published, not signing yet
    ACTIVE = "active"  # signing now
    RETIRED = "retired"  # published until the tokens it signed have expired
    EXPIRED = "expired"  # no token it signed is valid any more: may be deleted


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key's place in the schedule (what ``byollm keys list`` shows)."""

    kid: str
    generation: int
    status: KeyStatus
    created_at: datetime
    activate_at: datetime
    retired_at: datetime | None
    unpublish_at: datetime | None

    @property
    def published(self) -> bool:
        return self.status is not KeyStatus.EXPIRED


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The key that signs now, with its private half (never shown by ``repr``)."""

    kid: str
    token_lifetime_seconds: int
    private: RSAKey = field(repr=False)


def schedule(records: list[SigningKeyRecord], now: datetime) -> list[KeyView]:
    """Each key's status at ``now`` (pure: the rows and the clock are the only inputs)."""
    ordered = sorted(records, key=lambda r: r.generation)
    signer = max((r.generation for r in ordered if r.activate_at <= now), default=None)
    views: list[KeyView] = []
    for index, record in enumerate(ordered):
        later = [r.activate_at for r in ordered[index + 1:]]
        retired_at = min(later) if later else None
        unpublish_at = (
            retired_at + timedelta(seconds=record.token_lifetime_seconds) + CLOCK_SKEW if retired_at else None
        )
        if record.activate_at > now:
            status = KeyStatus.PENDING
        elif record.generation == signer:
            status = KeyStatus.ACTIVE
        elif unpublish_at is not None and unpublish_at <= now:
            status = KeyStatus.EXPIRED
        else:
            status = KeyStatus.RETIRED
        views.append(KeyView(record.kid, record.generation, status, record.created_at, record.activate_at,
                             retired_at, unpublish_at))
    return views


def generate_key() -> tuple[str, dict[str, Any], bytes]:
    """A new RSA key: its kid (RFC 7638 thumbprint), public JWK and PKCS#8 PEM. CPU-bound: run in a thread."""
    key = RSAKey.generate_key(RSA_KEY_BITS, private=True)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": ALG}
    return kid, public, key.as_pem(private=True)


class KeyManager:
    """Signing keys for one process, backed by the database shared with every replica."""

    def __init__(self, store: Store, keyring: KeyRing, *, publish_delay_s: float, token_lifetime_s: int,
                 cache_s: float = 5.0, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._keyring = keyring
        self._publish_delay = timedelta(seconds=max(publish_delay_s, 0.0))
        self._token_lifetime_s = token_lifetime_s
        self._cache_s = cache_s
        self._clock = clock
        self._cached: tuple[datetime, list[SigningKeyRecord]] | None = None
        self._private: dict[str, RSAKey] = {}

    @property
    def token_lifetime_s(self) -> int:
        return self._token_lifetime_s

    # --- reading -----------------------------------------------------------------------------------------

    async def records(self, *, fresh: bool = False) -> list[SigningKeyRecord]:
        now = self._clock()
        if not fresh and self._cached is not None and self._cached[0] > now:
            return self._cached[1]
        async with self._store.session(readonly=True) as session:
            records = await list_signing_keys(session)
        self._cached = (now + timedelta(seconds=self._cache_s), records)
        return records

    def forget_cache(self) -> None:
        self._cached = None

    async def views(self, *, fresh: bool = False) -> list[KeyView]:
        return schedule(await self.records(fresh=fresh), self._clock())

    async def jwks(self) -> dict[str, Any]:
        """The published public keys, newest first (so the signer is near the front)."""
        records = await self.records()
        by_kid = {r.kid: r for r in records}
        views = [v for v in schedule(records, self._clock()) if v.published]
        return {"keys": [by_kid[v.kid].public_jwk for v in sorted(views, key=lambda v: -v.generation)]}

    async def signing_key(self) -> SigningKey:
        """The key that signs now. A process that finds no key at all creates the first one."""
        for _ in range(2):
            record = await self._active_record() or await self._active_record(fresh=True)
            if record is None:
                await self.ensure_active_key()
                record = await self._active_record(fresh=True)
            if record is None:  # pragma: no cover - ensure_active_key always leaves an active key
                break
            private = self._private.get(record.kid) or await self._load_private(record)
            if private is not None:
                return SigningKey(kid=record.kid, token_lifetime_seconds=record.token_lifetime_seconds,
                                  private=private)
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "no usable OIDC signing key is active")

    async def _active_record(self, *, fresh: bool = False) -> SigningKeyRecord | None:
        records = await self.records(fresh=fresh)
        active = self._active(schedule(records, self._clock()))
        return next((r for r in records if r.kid == active.kid), None) if active is not None else None

    @staticmethod
    def _active(views: list[KeyView]) -> KeyView | None:
        return next((v for v in views if v.status is KeyStatus.ACTIVE), None)

    async def _load_private(self, record: SigningKeyRecord) -> RSAKey | None:
        """The decrypted private key, or None after replacing a key whose private half is gone."""
        try:
            async with self._store.session(readonly=True) as session:
                pem = await read_private_key(session, keyring=self._keyring, kid=record.kid)
        except NotFoundError:
            # The private half was deleted (``byollm kek reset-secrets`` after a lost KEK). Nothing can be
            # signed with this key again: start a new generation at once rather than fail every run.
            log.warning("OIDC signing key %s has no private key any more; creating a new key now", record.kid)
            await self.rotate(publish_delay_s=0.0, expected_generation=record.generation)
            return None
        key = RSAKey.import_key(pem)
        self._private[record.kid] = key
        return key

    # --- writing -----------------------------------------------------------------------------------------

    async def ensure_active_key(self) -> SigningKeyRecord:
        """Make sure a key exists (the first start creates it, active at once); return the signer.

        Safe to call from every replica at once: only one first key can be stored (unique generation; on
        SQLite the write transaction also serialises the check and the insert).
        """
        records = await self.records(fresh=True)
        if not records:
            kid, public, pem = await asyncio.to_thread(generate_key)
            now = self._clock()
            try:
                async with self._store.session() as session:
                    if await max_generation(session) == 0:
                        await insert_signing_key(
                            session, keyring=self._keyring, kid=kid, generation=1, public_jwk=public,
                            private_pem=pem, token_lifetime_seconds=self._token_lifetime_s, created_at=now,
                            activate_at=now,
                        )
                        log.info("created the first OIDC signing key %s", kid)
            except ConflictError:
                pass  # another replica stored the first key at the same moment: use theirs
            records = await self.records(fresh=True)
        active = self._active(schedule(records, self._clock()))
        return next((r for r in records if active is not None and r.kid == active.kid),
                    max(records, key=lambda r: r.generation))

    async def rotate(self, *, publish_delay_s: float | None = None,
                     expected_generation: int | None = None) -> SigningKeyRecord:
        """Store the next generation, signing after the publish delay; return the newest key.

        ``expected_generation`` (automatic rotation) makes rotation conditional: if the newest generation is
        no longer the one the caller saw, another replica already rotated and its key is returned instead.
        """
        return (await self._rotate(publish_delay_s, expected_generation))[0]

    async def rotate_if_newest(self, generation: int) -> bool:
        """Rotate only if ``generation`` is still the newest; True if this call stored the new key."""
        return (await self._rotate(None, generation))[1]

    async def _rotate(self, publish_delay_s: float | None,
                      expected_generation: int | None) -> tuple[SigningKeyRecord, bool]:
        delay = self._publish_delay if publish_delay_s is None else timedelta(seconds=max(publish_delay_s, 0.0))
        kid, public, pem = await asyncio.to_thread(generate_key)
        now = self._clock()
        created = False
        try:
            async with self._store.session() as session:
                newest = await max_generation(session)
                if expected_generation is None or newest == expected_generation:
                    await insert_signing_key(
                        session, keyring=self._keyring, kid=kid, generation=newest + 1, public_jwk=public,
                        private_pem=pem, token_lifetime_seconds=self._token_lifetime_s, created_at=now,
                        activate_at=now + delay,
                    )
                    created = True
                    log.info("rotated the OIDC signing key: %s (generation %d) signs from %s", kid, newest + 1,
                             (now + delay).isoformat())
        except ConflictError:
            created = False  # another replica rotated at the same moment
        records = await self.records(fresh=True)
        return max(records, key=lambda r: r.generation), created

    async def prune(self) -> list[str]:
        """Delete keys no valid token can have been signed with; return their kids."""
        expired = [v.kid for v in await self.views(fresh=True) if v.status is KeyStatus.EXPIRED]
        if expired:
            async with self._store.session() as session:
                await delete_signing_keys(session, kids=expired)
            for kid in expired:
                self._private.pop(kid, None)
            self.forget_cache()
            log.info("removed %d expired OIDC signing key(s) from the JWKS", len(expired))
        return expired
