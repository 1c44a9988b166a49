"""Authentication on the hot path: a byollm token to its ``Caller``, cached briefly in memory.

Why a class of its own: every request (inference, admin API, panel) passes through it, so it holds only what
that path needs (a short-lived cache, lookups shared between concurrent misses, the last-used times to
write in batches) and nothing of the control service's management operations. ``ControlService`` owns one
and drops its cache whenever a change could alter what a token may do.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import MappingProxyType

from byollm.control.authz import Caller, PrincipalKind
from byollm.control.tokens import hash_token, looks_like_token
from byollm.errors import ByollmError, ErrorClass
from byollm.settings import Settings
from byollm.store import Store
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store import users as users_repo
from byollm.store.records import PrincipalType

__all__ = ["Authenticator"]


def _now() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    """Tokens to callers for one process: ``auth_cache_seconds`` bounds how long a revocation made on another
    replica takes to reach this one (this process forgets at once)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._auth_cache: dict[str, tuple[float, Caller]] = {}
        self._auth_loads: dict[str, asyncio.Task[Caller]] = {}  # lookups under way, by token digest
        self._usage = tokens_repo.TokenUsageBuffer()
        self._usage_lock = asyncio.Lock()

    async def authenticate(self, token: str) -> Caller:
        """The caller behind ``token``, or ``unauthenticated`` (same answer for every kind of bad token)."""
        if not looks_like_token(token):
            raise ByollmError(ErrorClass.UNAUTHENTICATED, "the token is not a byollm token")
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > now:
            caller = cached[1]
        else:
            caller = await self._load_once(digest)
            self._auth_cache[digest] = (now + self._settings.auth_cache_seconds, caller)
        if caller.token_uid is not None:
            self._usage.note(caller.token_uid, _now())
        return caller

    async def _load_once(self, digest: str) -> Caller:
        """``_load_caller``, shared by every request that misses the cache for the same token meanwhile.

        Why: when a cached entry expires under load, every request carrying that token misses at once; without
        sharing, each made its own lookup (64 identical queries queued on SQLite at c=64). The lookup runs as
        its own task, so a requester that goes away does not cancel it for the others.
        """
        load = self._auth_loads.get(digest)
        if load is None:
            load = asyncio.ensure_future(self._load_caller(digest))
            self._auth_loads[digest] = load
            load.add_done_callback(lambda done: self._loaded(digest, done))
        return await asyncio.shield(load)

    def _loaded(self, digest: str, load: asyncio.Task[Caller]) -> None:
        if self._auth_loads.get(digest) is load:
            del self._auth_loads[digest]
        if not load.cancelled():
            load.exception()  # retrieved here: a lookup whose requesters all left logs no "never retrieved"

    async def _load_caller(self, digest: str) -> Caller:
        async with self._store.session(readonly=True) as session:
            record = await tokens_repo.find_token_by_hash(session, token_hash=digest)
            if record is None or not record.is_active(_now()):
                raise ByollmError(ErrorClass.UNAUTHENTICATED, "the token is invalid, expired or revoked")
            if record.principal_type is PrincipalType.AGENT:
                return Caller(principal_uid=record.principal_uid, kind=PrincipalKind.AGENT,
                              token_team_uid=record.team_uid, token_uid=record.uid)
            user = await users_repo.get_user(session, uid=record.principal_uid)
            memberships = await teams_repo.list_memberships(session, user_uid=user.uid)
        return Caller(
            principal_uid=user.uid, kind=PrincipalKind.USER, is_operator=user.is_operator,
            memberships=MappingProxyType({m.team_uid: m.role for m in memberships}),
            token_team_uid=record.team_uid, token_uid=record.uid,
        )

    def forget(self) -> None:
        """Drop the cache (after revocations, role and membership changes)."""
        self._auth_cache.clear()

    async def flush_token_usage(self) -> int:
        """Write the last-used times noted since the previous flush; the services' ticker calls this."""
        async with self._usage_lock:
            if not len(self._usage):
                return 0
            async with self._store.session() as session:
                return await self._usage.flush(session)
