"""Team policies in memory, so the hot path plans routes without a database round trip.

A cached policy is trusted for ``ttl_s`` seconds; after that one cheap query compares the team's
``policy_version`` with the cached one and reloads only when it moved. Changes made through this process's
control service invalidate at once; changes made by another replica are seen within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import time

from byollm.policy.types import TeamPolicy
from byollm.store import Store
from byollm.store import policy as policy_repo

__all__ = ["DEFAULT_TTL_S", "PolicyCache"]

DEFAULT_TTL_S = 2.0  # how stale another replica's change may be here; one cheap version check per team per TTL


class PolicyCache:
    def __init__(self, store: Store, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, int, TeamPolicy]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def invalidate(self, team_uid: str | None = None) -> None:
        if team_uid is None:
            self._entries.clear()
        else:
            self._entries.pop(team_uid, None)

    async def get(self, team_uid: str) -> TeamPolicy:
        entry = self._entries.get(team_uid)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[2]
        lock = self._locks.setdefault(team_uid, asyncio.Lock())
        async with lock:  # one reload per team at a time, however many requests arrive together
            entry = self._entries.get(team_uid)
            if entry is not None and entry[0] > time.monotonic():
                return entry[2]
            async with self._store.session(readonly=True) as session:
                version = await policy_repo.get_policy_version(session, team_uid=team_uid)
                if entry is not None and entry[1] == version:
                    policy = entry[2]
                else:
                    policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            self._entries[team_uid] = (time.monotonic() + self._ttl_s, version, policy)
            return policy
