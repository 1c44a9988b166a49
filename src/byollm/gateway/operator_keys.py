"""The operator's direct-provider API keys: stored encrypted (``secrets`` table), held decrypted in memory.

Why in memory: the hot path must not decrypt per request. The keys are loaded at start and reloaded when the
operator changes one through this process; other replicas reload on their next ``refresh`` tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from byollm.crypto.kek import KeyRing
from byollm.policy.types import Host
from byollm.store import Store
from byollm.store import secrets as secrets_repo

__all__ = ["OperatorKeys", "secret_name"]

_PREFIX = "provider_key:"


def secret_name(host: Host) -> str:
    return _PREFIX + host.value


class OperatorKeys:
    def __init__(self, store: Store, keyring: KeyRing) -> None:
        self._store = store
        self._keyring = keyring
        self._keys: Mapping[Host, str] = MappingProxyType({})

    def __repr__(self) -> str:
        return f"OperatorKeys(providers={sorted(h.value for h in self._keys)})"

    @property
    def providers(self) -> frozenset[Host]:
        return frozenset(self._keys)

    def get(self, host: Host) -> str | None:
        return self._keys.get(host)

    async def refresh(self) -> None:
        keys: dict[Host, str] = {}
        async with self._store.session(readonly=True) as session:
            names = await secrets_repo.list_secret_names(session)
            for host in Host:
                if host.is_direct and secret_name(host) in names:
                    keys[host] = await secrets_repo.get_secret_text(session, keyring=self._keyring,
                                                                    name=secret_name(host))
        self._keys = MappingProxyType(keys)

    async def set(self, host: Host, value: str | None) -> None:
        """Store (or with ``None`` delete) the operator's key for ``host``."""
        async with self._store.session() as session:
            await self.write(session, host, value)
        await self.refresh()

    async def write(self, session: AsyncSession, host: Host, value: str | None) -> None:
        """``set`` inside the caller's transaction (so the key and its audit entry commit together, or neither
        does); the caller calls ``refresh`` after it commits."""
        if value is None:
            await secrets_repo.delete_secret(session, name=secret_name(host))
        else:
            await secrets_repo.put_secret(session, keyring=self._keyring, name=secret_name(host), value=value)
