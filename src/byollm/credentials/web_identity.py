"""Web identity: exchange byollm's own OIDC token for a run's temporary AWS credentials (STS).

Why a broker object: a run makes many Bedrock calls, and each would otherwise mint a token and call STS. The
broker keeps each run's credentials in memory (per run and role), refreshes them with a new token and a new
exchange before they expire, drops them when the run ends (``forget_run``), and after a failed exchange
answers with the same classified error for a back-off period instead of calling STS again, so the gateway
fails over along the plan at once.

The call: ``AssumeRoleWithWebIdentity`` is unsigned (AWS marks it noAuth), a query-protocol ``POST`` with a
form body, to ``settings.sts_endpoint_url`` or the regional endpoint of the route's region, through the
shared aiohttp pool with connect and read timeouts. ``RoleSessionName`` names the run
(``byollm-run-<run-uid>``) or, for a named agent calling the gateway directly with its own token (no run),
the request (``byollm-req-<request-id>``), sanitised to STS's 2-64 characters of ``[\\w+=,.@-]``.

Classification of STS errors (``classify_sts_error``)::

    AccessDenied                                   role_assumption_failed (trust policy did not match)
    InvalidIdentityToken "No OpenIDConnect provider found"
                                                   oidc_provider_missing
    InvalidIdentityToken "Incorrect token audience" oidc_provider_missing (provider lacks the audience)
    InvalidIdentityToken (other: key not found, signature)
                                                   issuer_unreachable (AWS could not use the issuer's keys)
    IDPCommunicationError                          issuer_unreachable
    IDPRejectedClaim                               role_assumption_failed (check the clock and conditions)
    ExpiredTokenException                          role_assumption_failed (byollm's clock vs AWS's)
    RegionDisabledException                        region_model_mismatch (STS not active in that region)
    ValidationError "DurationSeconds exceeds …"    role_assumption_failed (role's MaxSessionDuration)
    ValidationError, MalformedPolicyDocument, PackedPolicyTooLarge (other)
                                                   role_assumption_failed
    Throttling / HTTP 429                          quota_exceeded (transient)
    HTTP 5xx, timeouts, connection errors          upstream_unavailable (transient)

Details name the role ARN, the issuer host and the condition to check; never the token or a credential
(STS's own message is included only after removing anything token-shaped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp

from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.executor import InferenceContext
from byollm.oidc.tokens import MintedToken, TokenMinter
from byollm.policy.types import RouteCandidate
from byollm.policy.validate import InvalidValue, parse_role_arn
from byollm.providers.base import AwsAuth
from byollm.providers.http import HttpPool
from byollm.redact import redact

__all__ = [
    "ExchangeConfig",
    "FailureHook",
    "WebIdentityBroker",
    "classify_sts_error",
    "role_session_name",
    "sts_endpoint",
]

log = logging.getLogger("byollm.credentials.web_identity")

FailureHook = Callable[[InferenceContext, ByollmError], Awaitable[None]]
"""Called once per failed STS exchange (not for answers served from the back-off), e.g. to record the
failure in the run's events. Exceptions it raises are logged and swallowed."""

_SESSION_UNSAFE = re.compile(r"[^\w+=,.@-]")
_TRANSIENT = frozenset({ErrorClass.UPSTREAM_UNAVAILABLE, ErrorClass.QUOTA_EXCEEDED})
MIN_DURATION_S = 900
MAX_DURATION_S = 43200

Scope = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """How the broker calls STS and how long it remembers answers."""

    sts_endpoint_url: str | None = None
    duration_s: int = 3600
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    refresh_margin_s: float = 300.0  # exchange again when less than this remains
    backoff_initial_s: float = 30.0  # after a failure someone must fix (trust policy, provider, issuer)
    backoff_max_s: float = 300.0
    transient_backoff_initial_s: float = 5.0  # after a timeout, throttling or a 5xx
    transient_backoff_max_s: float = 60.0
    max_entries: int = 10_000

    @property
    def bounded_duration_s(self) -> int:
        return max(MIN_DURATION_S, min(MAX_DURATION_S, int(self.duration_s)))


def sts_endpoint(configured: str | None, region: str) -> str:
    """``configured`` if set, else the regional STS endpoint of ``region`` (China regions included)."""
    if configured:
        return configured.rstrip("/") + "/"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


def role_session_name(context: InferenceContext) -> str:
    """A RoleSessionName naming the run (or the request, for an agent without a run), within STS's limits."""
    raw = f"byollm-run-{context.run_uid}" if context.run_uid else f"byollm-req-{context.request_id}"
    name = _SESSION_UNSAFE.sub("-", raw)[:64]
    return name if len(name) >= 2 else "byollm"


@dataclass(slots=True)
class _Entry:
    auth: AwsAuth
    refresh_at: float  # monotonic: exchange again from here on
    valid_until: float  # monotonic: the credentials' expiry
    assumed_role_arn: str


@dataclass(slots=True)
class _Failure:
    error: ByollmError
    retry_at: float  # monotonic
    delay_s: float


def _account_of(role_arn: str) -> str | None:
    try:
        return parse_role_arn(role_arn).account_id
    except InvalidValue:
        return None


def _scrub(message: str, token: str) -> str:
    """STS's message minus anything that could be (part of) the token; short."""
    return redact(message, known=(token,), replacement="<token>").strip()[:300]


def classify_sts_error(status: int, code: str, message: str, *, role_arn: str, issuer: str, audience: str,
                       team_uid: str, region: str, duration_s: int) -> ByollmError:
    """Map one STS error answer to the taxonomy (see the module docstring for the table)."""
    host = issuer.split("://", 1)[-1].rstrip("/")
    account = _account_of(role_arn) or "<account>"
    provider_arn = f"arn:aws:iam::{account}:oidc-provider/{host}"
    sub_pattern = f"scoped_principal:{team_uid}/*"
    context: dict[str, object] = {"role_arn": role_arn, "issuer_host": host, "sts_code": code or f"HTTP {status}"}
    lowered = message.lower()
    if code == "AccessDenied":
        check = (f"the trust policy of {role_arn} must allow sts:AssumeRoleWithWebIdentity for the federated"
                 f" principal {provider_arn} with {host}:aud = {audience} and {host}:sub like {sub_pattern}")
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                           f"AWS STS refused to let byollm assume {role_arn} (AccessDenied): {check}",
                           **context, check=check)
    if code == "InvalidIdentityToken" and "no openidconnect provider" in lowered:
        check = (f"account {account} needs an IAM OpenID Connect provider for {issuer} with client ID (audience)"
                 f" {audience}")
        return ByollmError(ErrorClass.OIDC_PROVIDER_MISSING,
                           f"AWS STS found no OIDC provider for byollm's issuer {host} in the account of {role_arn}:"
                           f" {check}", **context, check=check)
    if code == "InvalidIdentityToken" and "audience" in lowered:
        check = f"the IAM OIDC provider {provider_arn} must list {audience} among its client IDs (audiences)"
        return ByollmError(ErrorClass.OIDC_PROVIDER_MISSING,
                           f"AWS STS refused the token's audience {audience} for {role_arn}: {check}",
                           **context, check=check)
    if code == "InvalidIdentityToken":
        check = (f"AWS must be able to fetch {issuer}/.well-known/openid-configuration and the JWKS it names, and"
                 " find the token's signing key there (is the issuer URL behind a proxy serving stale keys?)")
        return ByollmError(ErrorClass.ISSUER_UNREACHABLE,
                           f"AWS STS could not validate byollm's token for {role_arn} ({code}): {check}",
                           **context, check=check)
    if code == "IDPCommunicationError":
        check = f"{issuer}/.well-known/openid-configuration must be reachable from the internet over HTTPS"
        return ByollmError(ErrorClass.ISSUER_UNREACHABLE,
                           f"AWS STS could not reach byollm's issuer {host} while assuming {role_arn}: {check}",
                           **context, check=check)
    if code == "IDPRejectedClaim":
        check = ("byollm's clock must be synchronised (the token's iat/nbf looked like the future to AWS), and the"
                 f" trust policy's conditions must accept sub {sub_pattern} and aud {audience}")
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                           f"AWS STS rejected a claim of byollm's token for {role_arn} (IDPRejectedClaim): {check}",
                           **context, check=check)
    if code == "ExpiredTokenException":
        check = "byollm's clock must be synchronised with AWS (NTP): the token had already expired when STS read it"
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                           f"AWS STS found byollm's token for {role_arn} expired: {check}", **context, check=check)
    if code == "RegionDisabledException":
        check = (f"activate AWS STS in region {region} for account {account} (IAM account settings), or set the"
                 " team's Bedrock region to an active one")
        return ByollmError(ErrorClass.REGION_MODEL_MISMATCH,
                           f"AWS STS is not activated in {region} for the account of {role_arn}: {check}",
                           **context, check=check)
    if code == "ValidationError" and "durationseconds" in lowered:
        check = (f"raise the maximum session duration of {role_arn} to at least {duration_s} seconds, or lower"
                 " BYOLLM_WEB_IDENTITY_SESSION_SECONDS")
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                           f"AWS STS refused a {duration_s}-second session for {role_arn}: {check}",
                           **context, check=check)
    if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded") or status == 429:
        return ByollmError(ErrorClass.QUOTA_EXCEEDED, f"AWS STS throttled the exchange for {role_arn}", **context)
    if status >= 500 or not code:
        return ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                           f"AWS STS failed the exchange for {role_arn} (HTTP {status})", **context)
    check = f"STS said: {message}" if message else "check the role ARN configured in byollm"
    return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                       f"AWS STS refused to let byollm assume {role_arn} ({code}): {check}", **context, check=check)


def _xml_fields(document: bytes) -> dict[str, str]:
    """Leaf elements of an STS answer by local name (first occurrence), e.g. ``Code``, ``AccessKeyId``."""
    fields: dict[str, str] = {}
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - STS's answer to our own request
    except ElementTree.ParseError:
        return fields
    for element in root.iter():
        name = element.tag.rsplit("}", 1)[-1]
        if element.text and element.text.strip() and name not in fields:
            fields[name] = element.text.strip()
    return fields


def _parse_expiration(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class WebIdentityBroker:
    """The ``WebIdentitySource`` of cloud runs: mint, exchange, cache, refresh, back off, forget.

    ``on_failure`` (settable after construction) is the runs worker's hook to record a failed exchange in
    the run's events.
    """

    def __init__(self, minter: TokenMinter, pool: HttpPool, config: ExchangeConfig, *,
                 on_failure: FailureHook | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._minter = minter
        self._pool = pool
        self._config = config
        self._clock = clock
        self.on_failure: FailureHook | None = on_failure
        self._cache: OrderedDict[tuple[Scope, str], _Entry] = OrderedDict()
        self._failures: dict[tuple[Scope, str], _Failure] = {}
        self._locks: dict[tuple[Scope, str], asyncio.Lock] = {}

    @property
    def minter(self) -> TokenMinter:
        return self._minter

    @staticmethod
    def _scope(context: InferenceContext) -> Scope:
        if context.run_uid:
            return ("run", context.run_uid)
        return ("principal", context.team_uid, context.actor.principal_uid, context.actor.agent_uid or "")

    # --- the WebIdentitySource protocol --------------------------------------------------------------------

    async def credentials_for(self, context: InferenceContext, candidate: RouteCandidate) -> AwsAuth:
        role_arn = candidate.role_arn
        if not role_arn:
            raise ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                              "no IAM role is configured for cloud runs of this team or agent")
        key = (self._scope(context), role_arn)
        fresh = self._fresh(key)
        if fresh is not None:
            return fresh.auth
        held = self._during_backoff(key)
        if held is not None:
            return held
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            fresh = self._fresh(key)  # another call may have exchanged while this one waited
            if fresh is not None:
                return fresh.auth
            held = self._during_backoff(key)
            if held is not None:
                return held
            try:
                entry = await self._exchange(context, candidate, role_arn)
            except ByollmError as error:
                stale = self._cache.get(key)
                self._note_failure(key, error)
                await self._notify(context, error)
                if stale is not None and stale.valid_until - self._clock() > 60:
                    return stale.auth  # a failed early refresh: the current credentials still work
                raise
            self._failures.pop(key, None)
            self._cache[key] = entry
            self._cache.move_to_end(key)
            self._evict()
            return entry.auth

    def forget_run(self, run_uid: str) -> None:
        """Drop everything remembered for a run (credentials, back-off); call it when the run ends."""
        for mapping in (self._cache, self._failures, self._locks):
            for key in [k for k in mapping if k[0] == ("run", run_uid)]:
                del mapping[key]

    def assumed_role_arn(self, run_uid: str, role_arn: str) -> str | None:
        """The assumed-role ARN STS reported for a run's current credentials (for events and tests)."""
        entry = self._cache.get((("run", run_uid), role_arn))
        return entry.assumed_role_arn if entry is not None else None

    # --- internals -----------------------------------------------------------------------------------------

    def _fresh(self, key: tuple[Scope, str]) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is not None and entry.refresh_at > self._clock():
            return entry
        return None

    def _during_backoff(self, key: tuple[Scope, str]) -> AwsAuth | None:
        """None when STS may be called; still-valid older credentials during a back-off; else the cached error."""
        failure = self._failures.get(key)
        if failure is None or failure.retry_at <= self._clock():
            return None
        stale = self._cache.get(key)
        if stale is not None and stale.valid_until - self._clock() > 60:
            return stale.auth  # an early refresh failed, but the current credentials still work
        error = failure.error
        raise ByollmError(error.error_class, error.detail, **dict(error.context),
                          retry_in_s=round(failure.retry_at - self._clock(), 1))

    def _note_failure(self, key: tuple[Scope, str], error: ByollmError) -> None:
        previous = self._failures.get(key)
        transient = error.error_class in _TRANSIENT
        initial = self._config.transient_backoff_initial_s if transient else self._config.backoff_initial_s
        ceiling = self._config.transient_backoff_max_s if transient else self._config.backoff_max_s
        delay = min(previous.delay_s * 2, ceiling) if previous is not None else initial
        self._failures[key] = _Failure(error, self._clock() + delay, delay)
        log.warning("web-identity exchange failed (%s) for role %s; next attempt in %.0f s",
                    error.error_class.code, key[1], delay)

    async def _notify(self, context: InferenceContext, error: ByollmError) -> None:
        if self.on_failure is None:
            return
        try:
            await self.on_failure(context, error)
        except Exception as exc:  # a recording failure must not hide the exchange's own error
            log.warning("the web-identity failure hook failed (%s)", type(exc).__name__)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._cache.items() if e.valid_until <= now]:
            del self._cache[key]
        while len(self._cache) > self._config.max_entries:
            self._cache.popitem(last=False)
        for key in [k for k, lock in self._locks.items()
                    if k not in self._cache and k not in self._failures and not lock.locked()]:
            del self._locks[key]

    async def _exchange(self, context: InferenceContext, candidate: RouteCandidate, role_arn: str) -> _Entry:
        region = candidate.region or "us-east-1"
        issuer = self._minter.issuer.require_url()
        token = await self._minter.mint(team_uid=context.team_uid, actor=context.actor, run_uid=context.run_uid)
        duration = self._config.bounded_duration_s
        status, body = await self._post(sts_endpoint(self._config.sts_endpoint_url, region), role_arn,
                                        role_session_name(context), token, duration)
        fields = _xml_fields(body)
        if status != 200:
            raise classify_sts_error(
                status, fields.get("Code", ""), _scrub(fields.get("Message", ""), token.value), role_arn=role_arn,
                issuer=issuer, audience=self._minter.issuer.audience, team_uid=context.team_uid, region=region,
                duration_s=duration)
        try:
            auth = AwsAuth(access_key_id=fields["AccessKeyId"], secret_access_key=fields["SecretAccessKey"],
                           session_token=fields["SessionToken"], expires_at=_parse_expiration(fields["Expiration"]))
        except (KeyError, ValueError):
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                              f"AWS STS answered the exchange for {role_arn} without usable credentials",
                              role_arn=role_arn) from None
        assert auth.expires_at is not None
        lifetime = (auth.expires_at - datetime.now(UTC)).total_seconds()
        now = self._clock()
        margin = min(self._config.refresh_margin_s, max(lifetime / 4, 0.0))
        return _Entry(auth=auth, refresh_at=now + lifetime - margin, valid_until=now + lifetime,
                      assumed_role_arn=fields.get("Arn", ""))

    async def _post(self, url: str, role_arn: str, session_name: str, token: MintedToken,
                    duration: int) -> tuple[int, bytes]:
        form = urlencode({
            "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role_arn,
            "RoleSessionName": session_name, "WebIdentityToken": token.value, "DurationSeconds": str(duration),
        })
        cfg = self._config
        timeout = aiohttp.ClientTimeout(total=cfg.connect_timeout_s + cfg.read_timeout_s,
                                        sock_connect=cfg.connect_timeout_s, sock_read=cfg.read_timeout_s)
        try:
            async with self._pool.session.post(
                url, data=form.encode("ascii"), timeout=timeout, allow_redirects=False,
                headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                              f"could not reach AWS STS to assume {role_arn} ({type(exc).__name__})",
                              role_arn=role_arn) from None
