"""Panel sessions: an opaque cookie naming a server-side session, and the CSRF token bound to it.

Why server-side and opaque: the cookie carries only a random session id, so neither the admin's byollm
token nor anything derived from it ever reaches the browser again after sign-in. The token stays in this
process's memory so every page re-authenticates through ``ControlService.authenticate``: a revoked token
or a demoted admin loses the panel within the control plane's auth-cache time, not at session end.

Why a synchronizer token for CSRF: each session (including the anonymous one that shows the sign-in form,
so sign-in itself is protected) holds one random token; every form carries it in a hidden field and every
POST is refused with 403 unless it matches (compared in constant time). ``SameSite=Strict`` on the cookie
is a second, independent layer.

Lifetimes are short on purpose: an idle session ends after ``IDLE_SECONDS``, any session after
``ABSOLUTE_SECONDS``, an unsigned-in one after ``ANONYMOUS_SECONDS``; the store is bounded so anonymous
visits cannot grow it without limit. Signing in replaces the session id (no fixation).

Limitation: sessions live in one process; with several ``byollm serve`` workers, put a sticky load balancer
in front of the panel (or sign in again when routed elsewhere).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "ABSOLUTE_SECONDS",
    "ANONYMOUS_SECONDS",
    "COOKIE_NAME",
    "CSRF_FIELD",
    "IDLE_SECONDS",
    "Flash",
    "PanelSession",
    "SessionStore",
]

COOKIE_NAME = "byollm_panel"
CSRF_FIELD = "csrf_token"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 60 * 60
ANONYMOUS_SECONDS = 15 * 60
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page (after a POST redirects): never a secret."""

    kind: str  # "ok" or "error"
    message: str
    remediation: str | None = None


@dataclass
class PanelSession:
    """One browser's session. ``token`` is the signed-in admin's byollm token (memory only, never rendered)."""

    sid: str
    csrf: str
    created: float
    last_seen: float
    token: str | None = field(default=None, repr=False)
    principal_uid: str | None = None
    flashes: list[Flash] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        return self.token is not None

    def csrf_ok(self, submitted: str | None) -> bool:
        """True when ``submitted`` is this session's CSRF token (constant-time comparison)."""
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), (submitted or "").encode())

    def flash(self, kind: str, message: str, remediation: str | None = None) -> None:
        self.flashes.append(Flash(kind, message, remediation))

    def take_flashes(self) -> list[Flash]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Sessions by id, expiring on idle and absolute lifetimes; bounded (oldest dropped first)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_sessions: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._max = max_sessions
        self._sessions: OrderedDict[str, PanelSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: PanelSession, now: float) -> bool:
        if not session.signed_in:
            return now - session.created > ANONYMOUS_SECONDS
        return now - session.last_seen > IDLE_SECONDS or now - session.created > ABSOLUTE_SECONDS

    def get(self, sid: str | None) -> PanelSession | None:
        """The live session behind ``sid`` (touching it), or None when unknown or expired."""
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[sid]
            return None
        session.last_seen = now
        self._sessions.move_to_end(sid)
        return session

    def new(self) -> PanelSession:
        """A fresh anonymous session with its own CSRF token."""
        now = self._clock()
        session = PanelSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now,
                               last_seen=now)
        self._sessions[session.sid] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def sign_in(self, old: PanelSession, *, token: str, principal_uid: str) -> PanelSession:
        """Replace ``old`` by a new signed-in session (new id and CSRF token: no session fixation)."""
        self.end(old.sid)
        session = self.new()
        session.token = token
        session.principal_uid = principal_uid
        return session

    def end(self, sid: str) -> None:
        self._sessions.pop(sid, None)
