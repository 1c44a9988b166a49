"""The simulator's mutable runtime state: the world, issued credentials, faults, quotas and the journals.

One ``SimState`` backs one simulator app. Services receive it at construction; nothing lives in module
globals. The world may be edited in place by the admin API, which then calls ``world_changed()`` so that
credential indexes and compiled policies are rebuilt lazily on next use.

Principals are what SigV4 verification resolves an access key to: an IAM user (long-term AKIA keys, or
temporary ASIA keys obtained with GetSessionToken), or an assumed role session (ASIA keys from
AssumeRoleWithWebIdentity). The policies that apply are looked up in the *current* world at evaluation
time, so changing a role's permission policy takes effect on existing sessions, as in IAM.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from byollm.sim.faults import FaultBook
from byollm.sim.iam_policy import PolicySet, compile_policies
from byollm.sim.world import Account, World

__all__ = [
    "InvocationLog",
    "Principal",
    "QuotaMeter",
    "RequestJournal",
    "SessionCredentials",
    "SigningIdentity",
    "SimState",
]

JOURNAL_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class SessionCredentials:
    """Temporary credentials as STS hands them out."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who signed a request. ``kind`` is ``user`` or ``assumed-role``; ``name`` the user or role name."""

    account_id: str
    arn: str
    kind: str
    name: str
    user_id: str
    session_name: str | None = None


@dataclass(slots=True)
class SigningIdentity:
    """What an access key id resolves to: its secret, the principal, and for temporary keys the token."""

    secret_access_key: str
    principal: Principal
    session_token: str | None = None
    expiration: float | None = None  # epoch seconds
    session_policy: dict[str, Any] | None = None


class RequestJournal:
    """Every request the simulator received, newest last, bounded. Read by canary scans in tests."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = 0

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        service: str,
    ) -> None:
        self._seq += 1
        self._entries.append(
            {
                "seq": self._seq,
                "time": time.time(),
                "method": method,
                "path": path,
                "query": query,
                "service": service,
                "headers": headers,  # raw ASGI pairs; decoded on read, off the hot path
                "body": body,
            }
        )

    def entries(self, *, service: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Raw entries (headers as ASGI byte pairs, body as bytes), oldest first."""
        items = [e for e in self._entries if service is None or e["service"] == service]
        return items[-limit:] if limit else items

    def dump(self, *, service: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """JSON-able entries (headers as strings, body as text or base64), as served at /_sim/requests."""
        return [self.to_json(e) for e in self.entries(service=service, limit=limit)]

    def clear(self) -> None:
        self._entries.clear()

    @staticmethod
    def to_json(entry: dict[str, Any]) -> dict[str, Any]:
        body: bytes = entry["body"]
        out = dict(entry)
        out["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in entry["headers"]]
        try:
            out["body"] = body.decode("utf-8")
            out["body_encoding"] = "utf-8"
        except UnicodeDecodeError:
            out["body"] = base64.b64encode(body).decode()
            out["body_encoding"] = "base64"
        return out


class InvocationLog:
    """Bedrock model-invocation logging stand-in: one record per model invocation, bounded."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def record(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


class QuotaMeter:
    """Sliding one-minute windows of requests and tokens per (account, model)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def _window(self, key: tuple[str, str]) -> deque[tuple[float, int]]:
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = deque()
        horizon = self._clock() - 60.0
        while win and win[0][0] <= horizon:
            win.popleft()
        return win

    def check(self, account_id: str, model_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> str | None:
        """None when the call fits, else ``requests`` or ``tokens`` naming the exhausted limit."""
        win = self._window((account_id, model_id))
        if rpm is not None and len(win) >= rpm:
            return "requests"
        if tpm is not None and sum(t for _, t in win) + tokens > tpm:
            return "tokens"
        return None

    def add(self, account_id: str, model_id: str, tokens: int) -> None:
        self._window((account_id, model_id)).append((self._clock(), tokens))

    def clear(self) -> None:
        self._windows.clear()


@dataclass(slots=True)
class _JwksEntry:
    keys: dict[str, Any]
    fetched_at: float
    max_age: float


@dataclass(slots=True)
class JwksCache:
    """Briefly cached JWKS documents per issuer (tests rotate keys, so keep this short)."""

    entries: dict[str, _JwksEntry] = field(default_factory=dict)

    def get(self, issuer: str, now: float) -> dict[str, Any] | None:
        entry = self.entries.get(issuer)
        if entry is None or now - entry.fetched_at > entry.max_age:
            return None
        return entry.keys

    def put(self, issuer: str, keys: dict[str, Any], now: float, max_age: float) -> None:
        self.entries[issuer] = _JwksEntry(keys, now, max_age)

    def clear(self) -> None:
        self.entries.clear()


def _random_key_id(prefix: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(16))


class SimState:
    """All mutable simulator state. See the module docstring."""

    def __init__(self, world: World, *, clock: Callable[[], float] = time.time) -> None:
        self._initial = world.to_json()
        self.world = world
        self.clock = clock
        self.faults = FaultBook(world.faults, seed=world.seed)
        self.journal = RequestJournal()
        self.invocations = InvocationLog()
        self.quotas = QuotaMeter(clock)
        self.jwks_cache = JwksCache()
        self.issuers: dict[str, dict[str, Any]] = {}  # test issuers hosted under /_sim/issuers/{name}
        self.jwks_max_age_s = 5.0
        self._lock = threading.RLock()
        self._session_keys: dict[str, SigningIdentity] = {}
        self._long_term: dict[str, SigningIdentity] | None = None
        self._policy_cache: dict[tuple[str, str, str], PolicySet] = {}
        self.version = 0

    # ------------------------------------------------------------------ world lifecycle

    def world_changed(self) -> None:
        """Call after editing ``self.world`` in place: drops derived indexes and compiled policies."""
        with self._lock:
            self.version += 1
            self._long_term = None
            self._policy_cache = {}

    def replace_world(self, world: World) -> None:
        with self._lock:
            self.world = world
            self.faults.clear(seed=world.seed)
            for data in world.faults:
                self.faults.add(data)
            self.world_changed()

    def reset(self) -> None:
        """Back to the world as loaded, and forget everything that happened since."""
        from byollm.sim.world import parse_world

        with self._lock:
            self.replace_world(parse_world(self._initial))
            self._session_keys.clear()
            self.journal.clear()
            self.invocations.clear()
            self.quotas.clear()
            self.jwks_cache.clear()
            self.issuers.clear()

    # ------------------------------------------------------------------ contract for other services

    def provider_keys(self, provider: str) -> frozenset[str]:
        """API keys the direct provider ``provider`` (anthropic, openai, google) accepts."""
        return frozenset(self.world.provider_keys.get(provider, ()))

    def latency(self, service: str, model: str | None) -> tuple[float, float]:
        """(time to first token s, per-token delay s) for ``model``; the same for every service."""
        del service
        return self.world.behaviour.latency(model)

    def account(self, account_id: str) -> Account | None:
        return self.world.accounts.get(account_id)

    # ------------------------------------------------------------------ credentials

    def _long_term_keys(self) -> dict[str, SigningIdentity]:
        keys = self._long_term
        if keys is None:
            keys = {}
            for acct in self.world.accounts.values():
                for user in acct.users.values():
                    principal = Principal(
                        account_id=acct.account_id,
                        arn=user.arn(acct.account_id),
                        kind="user",
                        name=user.name,
                        user_id=user.user_id,
                    )
                    for key in user.access_keys:
                        if key.active:
                            keys[key.access_key_id] = SigningIdentity(key.secret_access_key, principal)
            self._long_term = keys
        return keys

    def signing_identity(self, access_key_id: str) -> SigningIdentity | None:
        """Resolve an access key id (long-term or temporary) to its identity, or None if unknown."""
        ident = self._session_keys.get(access_key_id)
        if ident is not None:
            return ident
        return self._long_term_keys().get(access_key_id)

    def issue_session_credentials(
        self,
        *,
        account_id: str,
        principal_arn: str,
        duration_s: int,
        session_policy: dict[str, Any] | None = None,
    ) -> SessionCredentials:
        """Mint ASIA… credentials for a principal ARN in the world; SigV4 verification will accept them.

        ``principal_arn`` is an assumed-role ARN (``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION``, whose
        role's policies apply) or an IAM user ARN (``arn:aws:iam::ACCT:user/NAME``, for GetSessionToken and
        sign-in sessions).
        """
        principal = self._principal_for_arn(account_id, principal_arn)
        access_key_id = _random_key_id("ASIA")
        secret = secrets.token_urlsafe(30)[:40]
        token = "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(180)).decode()
        expires = self.clock() + duration_s
        with self._lock:
            self._session_keys[access_key_id] = SigningIdentity(
                secret_access_key=secret,
                principal=principal,
                session_token=token,
                expiration=expires,
                session_policy=session_policy,
            )
        return SessionCredentials(
            access_key_id=access_key_id,
            secret_access_key=secret,
            session_token=token,
            expiration=datetime.fromtimestamp(int(expires), tz=UTC),
        )

    def expire_credentials(self, access_key_id: str, *, ago_s: float = 1.0) -> bool:
        """Make temporary credentials expired now (tests of ExpiredToken handling)."""
        ident = self._session_keys.get(access_key_id)
        if ident is None:
            return False
        ident.expiration = self.clock() - ago_s
        return True

    def _principal_for_arn(self, account_id: str, arn: str) -> Principal:
        acct = self.world.accounts.get(account_id)
        if acct is None:
            raise ValueError(f"unknown account {account_id}")
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[4] != account_id:
            raise ValueError(f"principal ARN {arn!r} is not in account {account_id}")
        resource = parts[5]
        if resource.startswith("assumed-role/"):
            _, role_name, session = resource.split("/", 2)
            role = acct.roles.get(role_name)
            if role is None:
                raise ValueError(f"unknown role {role_name} in {account_id}")
            return Principal(account_id, arn, "assumed-role", role_name, f"{role.role_id}:{session}", session)
        if resource.startswith("user/"):
            user_name = resource.rsplit("/", 1)[-1]
            user = acct.users.get(user_name)
            if user is None:
                raise ValueError(f"unknown user {user_name} in {account_id}")
            return Principal(account_id, user.arn(account_id), "user", user_name, user.user_id)
        raise ValueError(f"unsupported principal ARN {arn!r}")

    # ------------------------------------------------------------------ policies

    def identity_policies(self, principal: Principal) -> PolicySet:
        """Compiled identity-based policies of the principal's user or role (cached per world version)."""
        key = (principal.account_id, principal.kind, principal.name)
        cached = self._policy_cache.get(key)
        if cached is not None:
            return cached
        acct = self.world.accounts.get(principal.account_id)
        docs: Iterable[dict[str, Any]] = ()
        if acct is not None:
            if principal.kind == "user" and principal.name in acct.users:
                docs = acct.users[principal.name].policies.values()
            elif principal.kind == "assumed-role" and principal.name in acct.roles:
                docs = acct.roles[principal.name].policies.values()
        compiled = compile_policies(list(docs))
        self._policy_cache[key] = compiled
        return compiled

    # ------------------------------------------------------------------ misc

    @staticmethod
    def request_id() -> str:
        return str(uuid.uuid4())

    def now_utc(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def expiry_in(self, seconds: int) -> datetime:
        return self.now_utc() + timedelta(seconds=seconds)
