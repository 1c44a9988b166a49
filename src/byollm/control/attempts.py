"""Slow down token guessing: too many failed token attempts from one client address, and it must wait.

Why per client address and in memory: a failed attempt costs the attacker nothing but costs us a database
lookup; counting per address stops one client from hammering the token table without locking real users
out elsewhere. Tokens carry 256 random bits, so this is about load and noise more than guessing odds.
Counts live in one process (each replica limits on its own); the table is bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from byollm.errors import ByollmError, ErrorClass

__all__ = ["FailedAttemptLimiter"]


class FailedAttemptLimiter:
    def __init__(self, *, limit: int = 20, window_s: float = 60.0, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()  # client -> (window start, count)

    def check(self, client: str | None) -> None:
        """Refuse a client that failed too often in the current window (before any token lookup)."""
        if client is None or self._limit <= 0:
            return
        entry = self._failures.get(client)
        if entry is None:
            return
        started, count = entry
        now = self._clock()
        if now - started >= self._window_s:
            del self._failures[client]
            return
        if count >= self._limit:
            wait = int(self._window_s - (now - started)) + 1
            raise ByollmError(ErrorClass.TOO_MANY_ATTEMPTS,
                              f"too many failed token attempts from this address; try again in {wait} s")

    def failed(self, client: str | None) -> None:
        if client is None or self._limit <= 0:
            return
        now = self._clock()
        started, count = self._failures.pop(client, (now, 0))
        if now - started >= self._window_s:
            started, count = now, 0
        self._failures[client] = (started, count + 1)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
