"""OIDC signing keys at rest: the public half and schedule in ``oidc_signing_keys``, the private half sealed.

The private key (PKCS#8 PEM) is a ``secrets`` row named ``oidc_signing_key:<kid>``, sealed under the KEK by
``store.secrets``, written in the same transaction as its ``oidc_signing_keys`` row, so a key is either
wholly there or not at all. ``insert_signing_key`` relies on the unique ``generation`` column: when two
replicas create "the next key" at once, one insert fails with ``ConflictError`` and that replica re-reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.crypto.kek import KeyRing
from byollm.store import tables_oidc as t
from byollm.store.secrets import get_secret, put_secret
from byollm.store.tables import Secret

__all__ = [
    "SigningKeyRecord",
    "delete_signing_keys",
    "insert_signing_key",
    "list_signing_keys",
    "max_generation",
    "private_key_secret_name",
    "read_private_key",
]


def private_key_secret_name(kid: str) -> str:
    return f"oidc_signing_key:{kid}"


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """One signing key's public facts (never the private key)."""

    kid: str
    generation: int
    alg: str
    public_jwk: dict[str, Any]
    token_lifetime_seconds: int
    created_at: datetime
    activate_at: datetime


def _record(row: t.OidcSigningKey) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=row.kid, generation=row.generation, alg=row.alg, public_jwk=dict(row.public_jwk),
        token_lifetime_seconds=row.token_lifetime_seconds, created_at=row.created_at, activate_at=row.activate_at,
    )


async def list_signing_keys(session: AsyncSession) -> list[SigningKeyRecord]:
    """Every stored key, oldest generation first."""
    rows = await session.scalars(select(t.OidcSigningKey).order_by(t.OidcSigningKey.generation))
    return [_record(row) for row in rows]


async def max_generation(session: AsyncSession) -> int:
    """The newest generation, 0 when there is no key yet."""
    value = await session.scalar(select(func.max(t.OidcSigningKey.generation)))
    return int(value or 0)


async def insert_signing_key(
    session: AsyncSession,
    *,
    keyring: KeyRing,
    kid: str,
    generation: int,
    public_jwk: dict[str, Any],
    private_pem: bytes,
    token_lifetime_seconds: int,
    created_at: datetime,
    activate_at: datetime,
    alg: str = "RS256",
) -> SigningKeyRecord:
    """Store a new key; ``ConflictError`` (from the session scope) if the generation is already taken."""
    row = t.OidcSigningKey(
        kid=kid, generation=generation, alg=alg, public_jwk=public_jwk,
        token_lifetime_seconds=token_lifetime_seconds, created_at=created_at, activate_at=activate_at,
    )
    session.add(row)
    await session.flush()  # the unique generation is checked here, before the secret is written
    await put_secret(session, keyring=keyring, name=private_key_secret_name(kid), value=private_pem, now=created_at)
    return _record(row)


async def read_private_key(session: AsyncSession, *, keyring: KeyRing, kid: str) -> bytes:
    """The key's PKCS#8 PEM; ``NotFoundError`` if its secret is gone, ``KekError`` if it cannot be opened."""
    return await get_secret(session, keyring=keyring, name=private_key_secret_name(kid))


async def delete_signing_keys(session: AsyncSession, *, kids: list[str]) -> int:
    """Delete keys and their private halves (after every token they signed has expired)."""
    if not kids:
        return 0
    await session.execute(delete(Secret).where(Secret.name.in_([private_key_secret_name(k) for k in kids])))
    result = await session.execute(delete(t.OidcSigningKey).where(t.OidcSigningKey.kid.in_(kids)))
    return int(getattr(result, "rowcount", 0) or 0)
