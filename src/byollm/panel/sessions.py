"""Panel sessions: an opaque cookie naming a server-side session, and the CSRF token bound to it.

Why server-side and opaque: the cookie carries only a random session id, so neither the admin's byollm
token nor anything derived from it ever reaches the browser again after sign-in. The token stays in this
process's memory so every page re-authenticates through ``ControlService.authenticate``: a revoked token
or a demoted admin loses the panel within the control plane's auth-cache time, not at session end.

Why a synchronizer token for CSRF: each signed-in session holds one random token; every form carries it in a
hidden field and every POST is refused with 403 unless it matches (compared in constant time). ``SameSite=Strict``
on the cookie is a second, independent layer.

Why no session before sign-in: a session created for every anonymous visitor let cookie-less traffic fill the
bounded store and push signed-in admins out. The sign-in form is protected without server state instead: the
visitor gets a random ``SIGNIN_COOKIE`` and the form a token that is an HMAC of it under this process's key, so
a sign-in POST must carry both (``SessionStore.sign_in_csrf_ok``). Sessions exist only for signed-in admins, at
most ``MAX_SESSIONS_PER_ADDRESS`` per client address (a further sign-in from that address ends its oldest),
and the store is bounded as a whole (the session idle longest goes first).

Lifetimes are short on purpose: an idle session ends after ``IDLE_SECONDS``, any session after
``ABSOLUTE_SECONDS``. Signing in always makes a new session id (no fixation).

Limitation: sessions live in one process; with several ``byollm serve`` workers, put a sticky load balancer
in front of the panel (or sign in again when routed elsewhere).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "ABSOLUTE_SECONDS",
    "COOKIE_NAME",
    "CSRF_FIELD",
    "IDLE_SECONDS",
    "MAX_SESSIONS_PER_ADDRESS",
    "SIGNIN_COOKIE",
    "Flash",
    "PanelSession",
    "SessionStore",
]

COOKIE_NAME = "byollm_panel"
SIGNIN_COOKIE = "byollm_panel_signin"  # a random nonce; the sign-in form's CSRF token is its HMAC
CSRF_FIELD = "csrf_token"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 60 * 60
MAX_SESSIONS = 10_000
MAX_SESSIONS_PER_ADDRESS = 32  # the default of BYOLLM_PANEL_SESSIONS_PER_ADDRESS


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
    address: str | None = None
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
    """Signed-in sessions by id, expiring on idle and absolute lifetimes; bounded per address and in all."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_sessions: int = MAX_SESSIONS,
                 max_per_address: int = MAX_SESSIONS_PER_ADDRESS) -> None:
        self._clock = clock
        self._max = max_sessions
        self._max_per_address = max_per_address
        self._sessions: OrderedDict[str, PanelSession] = OrderedDict()  # least recently used first
        self._key = secrets.token_bytes(32)  # signs sign-in form tokens; a restart invalidates open forms

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: PanelSession, now: float) -> bool:
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

    # --- the sign-in form, before any session ----------------------------------------------------------------
    @staticmethod
    def new_signin_nonce() -> str:
        return secrets.token_urlsafe(24)

    def sign_in_csrf(self, nonce: str) -> str:
        """The sign-in form's CSRF token for the visitor whose ``SIGNIN_COOKIE`` is ``nonce``."""
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def sign_in_csrf_ok(self, nonce: str | None, submitted: str | None) -> bool:
        if not nonce or not submitted:
            return False
        return hmac.compare_digest(self.sign_in_csrf(nonce).encode(), submitted.encode())

    # --- sessions ---------------------------------------------------------------------------------------------
    def sign_in(self, old: PanelSession | None, *, token: str, principal_uid: str,
                address: str | None = None) -> PanelSession:
        """A new signed-in session (new id and CSRF token: no session fixation); ``old`` ends. The address's
        oldest session ends when it already has ``max_per_address``; the least recently used one when the
        store is full."""
        if old is not None:
            self.end(old.sid)
        now = self._clock()
        for sid, existing in list(self._sessions.items()):
            if self._expired(existing, now):
                del self._sessions[sid]
        if address is not None:
            mine = [sid for sid, existing in self._sessions.items() if existing.address == address]
            for sid in mine[:max(0, len(mine) - self._max_per_address + 1)]:
                del self._sessions[sid]
        session = PanelSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now,
                               last_seen=now, token=token, principal_uid=principal_uid, address=address)
        self._sessions[session.sid] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def end(self, sid: str) -> None:
        self._sessions.pop(sid, None)
