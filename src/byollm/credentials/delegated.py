"""Delegated interactive credentials: the user's own AWS session, attached to one request, used once.

The client (``byollm proxy``, ``byollm chat``) sends a frozen snapshot of the user's AWS credentials in
``x-byollm-aws-*`` headers. This module turns those headers into an ``AwsAuth`` for that one request, or
refuses them with the class the user can act on:

- none of the headers: no interactive Bedrock route (not an error; the planner simply has none);
- some but not all of key id + secret (or a session token without them): ``partial_credentials``;
- key id + secret without a session token (an IAM user's long-term keys): refused unless the team allows
  long-term keys (``long_term_credentials_refused``);
- an expiry in the past: ``local_credentials_expired`` at once;
- plain HTTP from a non-loopback peer: refused unless the operator allows it, since the secret would
  cross the network in clear.

When the team lists allowed AWS accounts, the account behind a credential set is found once with STS
``GetCallerIdentity`` and remembered in memory, keyed by a SHA-256 of the credential set (never the values
themselves), until the credentials expire. Nothing here is ever written anywhere.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.base import AwsAuth
from byollm.providers.http import HttpPool

__all__ = [
    "HEADER_ACCESS_KEY_ID",
    "HEADER_EXPIRATION",
    "HEADER_SECRET_ACCESS_KEY",
    "HEADER_SESSION_TOKEN",
    "AccountChecker",
    "DelegatedCredentials",
    "parse_delegated_headers",
]

HEADER_ACCESS_KEY_ID = "x-byollm-aws-access-key-id"
HEADER_SECRET_ACCESS_KEY = "x-byollm-aws-secret-access-key"
HEADER_SESSION_TOKEN = "x-byollm-aws-session-token"
HEADER_EXPIRATION = "x-byollm-aws-expiration"
DELEGATED_HEADERS = (HEADER_ACCESS_KEY_ID, HEADER_SECRET_ACCESS_KEY, HEADER_SESSION_TOKEN, HEADER_EXPIRATION)

_LOOPBACK = ("127.", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class DelegatedCredentials:
    auth: AwsAuth
    long_term: bool

    def __repr__(self) -> str:
        return f"DelegatedCredentials(long_term={self.long_term})"

    @property
    def fingerprint(self) -> str:
        """A one-way digest naming this credential set in caches (never logged, never stored)."""
        a = self.auth
        material = f"{a.access_key_id}\0{a.secret_access_key}\0{a.session_token or ''}".encode()
        return hashlib.sha256(material).hexdigest()


def _parse_expiration(value: str) -> datetime:
    text = value.strip()
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):  # epoch seconds beyond any representable date overflow
        raise ByollmError(ErrorClass.PARTIAL_CREDENTIALS,
                          f"{HEADER_EXPIRATION} is not an ISO 8601 time or epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_delegated_headers(
    headers: Mapping[str, str],
    *,
    long_term_allowed: bool,
    secure_transport: bool,
    now: datetime | None = None,
) -> DelegatedCredentials | None:
    """The request's delegated credentials, ``None`` when it carries none, or a refusal (see module doc)."""
    key_id = headers.get(HEADER_ACCESS_KEY_ID, "").strip()
    secret = headers.get(HEADER_SECRET_ACCESS_KEY, "").strip()
    token = headers.get(HEADER_SESSION_TOKEN, "").strip()
    expiration = headers.get(HEADER_EXPIRATION, "").strip()
    if not (key_id or secret or token or expiration):
        return None
    if not secure_transport:
        raise ByollmError(ErrorClass.INVALID_REQUEST,
                          "AWS credentials are accepted only over HTTPS (or plain HTTP on loopback)")
    if not key_id or not secret:
        raise ByollmError(ErrorClass.PARTIAL_CREDENTIALS,
                          "the request carries only part of an AWS credential set; none of it was used")
    if not token:
        if not long_term_allowed:
            raise ByollmError(ErrorClass.LONG_TERM_CREDENTIALS_REFUSED,
                              "these are long-term access keys (no session token); the team accepts only"
                              " short-lived session credentials")
        return DelegatedCredentials(AwsAuth(key_id, secret, None, None), long_term=True)
    expires_at = _parse_expiration(expiration) if expiration else None
    if expires_at is not None and expires_at <= (now or datetime.now(UTC)):
        raise ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED,
                          f"your AWS session credentials expired at {expires_at.isoformat(timespec='seconds')}")
    return DelegatedCredentials(AwsAuth(key_id, secret, token, expires_at), long_term=False)


def is_secure_transport(scheme: str, client_host: str | None, allow_insecure: bool) -> bool:
    if scheme == "https" or allow_insecure:
        return True
    return client_host is not None and client_host.startswith(_LOOPBACK)


class AccountChecker:
    """Finds (once) and remembers which AWS account a credential set belongs to.

    The memory is an LRU of at most ``max_entries`` digests, each kept until its credentials expire (or
    ``max_age`` for credentials without a known expiry).
    """

    def __init__(self, pool: HttpPool, *, sts_endpoint: str | None = None, max_entries: int = 10_000,
                 max_age: timedelta = timedelta(hours=1), timeout_s: float = 5.0) -> None:
        self._pool = pool
        self._sts_endpoint = sts_endpoint
        self._max_entries = max_entries
        self._max_age = max_age
        self._timeout_s = timeout_s
        self._known: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _endpoint(self, region: str) -> str:
        if self._sts_endpoint:
            return self._sts_endpoint.rstrip("/") + "/"
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://sts.{region}.{suffix}/"

    async def account_of(self, credentials: DelegatedCredentials, region: str) -> str:
        key = credentials.fingerprint
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            self._known.move_to_end(key)
            return known[1]
        account = await self._get_caller_identity(credentials.auth, region)
        lifetime = self._max_age.total_seconds()
        if credentials.auth.expires_at is not None:
            lifetime = min(lifetime, (credentials.auth.expires_at - datetime.now(UTC)).total_seconds())
        self._known[key] = (now + max(lifetime, 0.0), account)
        while len(self._known) > self._max_entries:
            self._known.popitem(last=False)
        return account

    async def _get_caller_identity(self, auth: AwsAuth, region: str) -> str:
        url = self._endpoint(region)
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(auth.access_key_id, auth.secret_access_key, auth.session_token), "sts",
                  region).add_auth(request)
        try:
            async with self._pool.session.post(url, data=body, headers=dict(request.headers.items()),
                                               timeout=aiohttp.ClientTimeout(total=self._timeout_s)) as response:
                text = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, "could not reach AWS STS to check the credentials'"
                              f" account ({type(exc).__name__})") from exc
        if status != 200:
            code = _xml_text(text, "Code") or f"HTTP {status}"
            if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                        "IncompleteSignature", "AccessDenied") or status in (400, 403):
                raise ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED,
                                  f"AWS STS refused your credentials ({code}); sign in again")
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, f"AWS STS answered {code}")
        account = _xml_text(text, "Account")
        if not account:
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, "AWS STS answered without an account id")
        return account


def _xml_text(document: bytes, tag: str) -> str | None:
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - STS's own response, parsed for two tags
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag and element.text:
            return element.text.strip()
    return None
