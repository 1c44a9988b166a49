"""Secrets at rest: values sealed under the key-encryption key (``crypto.kek``), one row per name.

Names say what a secret is (``provider_key:anthropic``, ``oidc_signing_key:<kid>``); values are bytes
and only ever leave this module through ``get_secret``. Each row records the id of the KEK that sealed it,
which is what lets ``verify_kek`` report a lost key at start, and ``rotate_secrets`` re-seal every row
under the current key in one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.crypto.kek import KekError, KeyRing
from byollm.store import tables as t
from byollm.store.engine import Store
from byollm.store.errors import NotFoundError
from byollm.store.records import SecretInfo

__all__ = [
    "RotationResult",
    "delete_secret",
    "delete_unreadable_secrets",
    "get_secret",
    "get_secret_text",
    "list_secret_names",
    "list_secrets",
    "put_secret",
    "rotate_secrets",
    "unreadable_secret_count",
    "verify_kek",
]


def _info(row: t.Secret) -> SecretInfo:
    return SecretInfo(name=row.name, kek_id=row.kek_id, created_at=row.created_at, updated_at=row.updated_at)


def _lost_key_error(count: int, keyring: KeyRing) -> KekError:
    return KekError(
        f"{count} stored secret(s) were sealed with a key-encryption key byollm does not have (it has"
        f" {keyring.current.kek_id} from {keyring.source}). Restore the original key: set BYOLLM_KEK to it,"
        " or restore the `kek` file in the data directory; if you changed keys on purpose, put the old key"
        " in BYOLLM_KEK_PREVIOUS and run `byollm kek rotate`. If the key is lost for good, delete the"
        " unreadable secrets with `byollm kek reset-secrets` and enter them again."
    )


async def put_secret(
    session: AsyncSession, *, keyring: KeyRing, name: str, value: bytes | str, now: datetime | None = None
) -> SecretInfo:
    """Seal ``value`` under the current KEK and store it as ``name`` (create or replace)."""
    if not name:
        raise ValueError("secret name must not be empty")
    plaintext = value.encode("utf-8") if isinstance(value, str) else value
    at = now or t.utcnow()
    sealed = keyring.current.encrypt(plaintext, name=name)
    row = await session.get(t.Secret, name)
    if row is None:
        row = t.Secret(name=name, ciphertext=sealed, kek_id=keyring.current.kek_id, created_at=at, updated_at=at)
        session.add(row)
    else:
        row.ciphertext, row.kek_id, row.updated_at = sealed, keyring.current.kek_id, at
    await session.flush()
    return _info(row)


async def get_secret(session: AsyncSession, *, keyring: KeyRing, name: str) -> bytes:
    """The secret's value; ``NotFoundError`` if absent, ``KekError`` if no known key can open it."""
    row = await session.get(t.Secret, name)
    if row is None:
        raise NotFoundError("no such secret", secret=name)
    kek = keyring.for_id(row.kek_id)
    if kek is None:
        raise _lost_key_error(1, keyring)
    return kek.decrypt(row.ciphertext, name=name)


async def get_secret_text(session: AsyncSession, *, keyring: KeyRing, name: str) -> str:
    return (await get_secret(session, keyring=keyring, name=name)).decode("utf-8")


async def list_secret_names(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(t.Secret.name).order_by(t.Secret.name)))


async def list_secrets(session: AsyncSession) -> list[SecretInfo]:
    return [_info(row) for row in await session.scalars(select(t.Secret).order_by(t.Secret.name))]


async def delete_secret(session: AsyncSession, *, name: str) -> None:
    result = await session.execute(delete(t.Secret).where(t.Secret.name == name))
    if not getattr(result, "rowcount", 0):
        raise NotFoundError("no such secret", secret=name)


async def unreadable_secret_count(session: AsyncSession, *, keyring: KeyRing) -> int:
    """How many secrets were sealed by a key that is neither the current nor a previous one."""
    rows = await session.execute(select(t.Secret.kek_id, func.count()).group_by(t.Secret.kek_id))
    return sum(int(n) for kek_id, n in rows if kek_id not in keyring.known_ids)


async def verify_kek(store: Store, keyring: KeyRing) -> None:
    """Raise ``KekError`` (never showing key material) if any stored secret needs a key we lack.

    Called at start, so a lost or swapped key is reported before a request needs a secret.
    """
    async with store.session(readonly=True) as session:
        count = await unreadable_secret_count(session, keyring=keyring)
    if count:
        raise _lost_key_error(count, keyring)


async def delete_unreadable_secrets(session: AsyncSession, *, keyring: KeyRing) -> list[str]:
    """Delete every secret no known key can open (after a key is lost for good); return their names."""
    names = list(await session.scalars(select(t.Secret.name).where(t.Secret.kek_id.not_in(sorted(keyring.known_ids)))))
    if names:
        await session.execute(delete(t.Secret).where(t.Secret.name.in_(names)))
    return names


@dataclass(frozen=True, slots=True)
class RotationResult:
    kek_id: str  # the current key's id
    resealed: int  # rows moved from a previous key to the current one
    already_current: int


async def rotate_secrets(session: AsyncSession, *, keyring: KeyRing, now: datetime | None = None) -> RotationResult:
    """Re-seal every secret under the current key, in the caller's transaction.

    Refuses (changing nothing) if any row needs a key the ring lacks. Rows already under the current key
    are left alone, so an interrupted rotation can simply be run again.
    """
    rows = list(await session.scalars(select(t.Secret).order_by(t.Secret.name).with_for_update()))
    missing = sum(1 for row in rows if keyring.for_id(row.kek_id) is None)
    if missing:
        raise _lost_key_error(missing, keyring)
    at = now or t.utcnow()
    moved = Counter[str]()
    for row in rows:
        if row.kek_id == keyring.current.kek_id:
            continue
        old = keyring.for_id(row.kek_id)
        assert old is not None
        row.ciphertext = keyring.current.encrypt(old.decrypt(row.ciphertext, name=row.name), name=row.name)
        row.kek_id, row.updated_at = keyring.current.kek_id, at
        moved[old.kek_id] += 1
    await session.flush()
    resealed = sum(moved.values())
    return RotationResult(kek_id=keyring.current.kek_id, resealed=resealed, already_current=len(rows) - resealed)
