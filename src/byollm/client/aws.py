"""The user's own AWS credentials, from botocore's default chain, one frozen snapshot per request.

The chain is botocore's, unchanged: environment variables, ``credential_process``, IAM Identity Center
(SSO), ``aws login`` sessions (``login_session``, which needs ``botocore[crt]``), the shared credentials
file, and so on, for ``--profile``, else ``AWS_PROFILE``, else the default profile.

Auto-refresh decides what happens as the credentials near their expiry:

- **on**: every snapshot goes through botocore's ``RefreshableCredentials``, which refreshes them as far as
  the session allows (a credential process runs again, an ``aws login`` session trades its refresh token,
  SSO fetches new role credentials). When the session itself can no longer refresh, botocore raises, and so
  do we: ``local_credentials_expired`` with the command that fixes it.
- **off**: the client takes the credentials the session holds when it starts and never asks botocore to
  refresh them (its refresh windows are set to zero). When they expire, every request is refused with
  ``local_credentials_expired`` until the user signs in again and the client reloads (``reload()``; the
  proxy reloads by itself once the AWS files change), or turns auto-refresh on.

Either way, a snapshot that is expired, or would expire within ``margin_s``, is never handed out: no
request leaves with expired credentials, and the peers' failure mode (stale SSO credentials retried for
minutes) cannot happen here.

Long-term keys (an IAM user's ``AKIA…`` key without a session token) are flagged; the gateway refuses them
unless the team allows them. Nothing here writes, logs or prints a credential value; ``AwsSnapshot``'s repr
shows only the key id's first four characters.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from byollm.errors import ByollmError, ErrorClass

__all__ = [
    "AwsCredentialSource",
    "AwsSnapshot",
    "CredentialsExpiredError",
    "NoCredentialsFoundError",
    "SourceInfo",
]

DEFAULT_MARGIN_S = 5.0


class CredentialsExpiredError(ByollmError):
    """The credentials expired (or the session can no longer refresh); ``command`` is what the user runs."""

    def __init__(self, detail: str, *, command: str, auto_refresh: bool) -> None:
        super().__init__(ErrorClass.LOCAL_CREDENTIALS_EXPIRED, detail)
        self.command = command
        self.auto_refresh = auto_refresh

    @property
    def sentence(self) -> str:
        """The one sentence that fixes it (peers.md item 2)."""
        if self.auto_refresh:
            return f"Run `{self.command}` to sign in to AWS again."
        return (f"Run `{self.command}` to sign in to AWS again, or turn on auto-refresh with"
                " `byollm config set auto_refresh true`.")

    def terminal_lines(self) -> list[str]:
        """What a long-running command (``proxy``, ``exec``) prints on the terminal that started it: the
        commands alone on their lines, ready to paste (the running proxy picks the setting up by itself)."""
        lines = [f"AWS session expired: {self.detail}. Your tool's requests are refused until you sign in again:",
                 f"    {self.command}"]
        if not self.auto_refresh:
            lines += ["To keep the session fresh as far as AWS allows from now on (this proxy picks it up), paste:",
                      "    byollm config set auto_refresh true"]
        return lines


class NoCredentialsFoundError(ByollmError):
    def __init__(self, profile: str | None) -> None:
        where = f"profile {profile!r}" if profile else "the default chain (no AWS_PROFILE)"
        super().__init__(ErrorClass.LOCAL_CREDENTIALS_EXPIRED, f"no AWS credentials found in {where}")
        self.command = "aws login" + (f" --profile {profile}" if profile else "")


@dataclass(frozen=True, slots=True)
class AwsSnapshot:
    """One consistent set of credentials for one request. Never stored, never logged."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: datetime | None
    method: str

    @property
    def long_term(self) -> bool:
        return not self.session_token

    def headers(self) -> dict[str, str]:
        """The ``x-byollm-aws-*`` headers the gateway reads (``credentials.delegated``)."""
        from byollm.credentials.delegated import (
            HEADER_ACCESS_KEY_ID,
            HEADER_EXPIRATION,
            HEADER_SECRET_ACCESS_KEY,
            HEADER_SESSION_TOKEN,
        )

        out = {HEADER_ACCESS_KEY_ID: self.access_key_id, HEADER_SECRET_ACCESS_KEY: self.secret_access_key}
        if self.session_token:
            out[HEADER_SESSION_TOKEN] = self.session_token
        if self.expires_at is not None:
            out[HEADER_EXPIRATION] = self.expires_at.astimezone(UTC).isoformat(timespec="seconds")
        return out

    def __repr__(self) -> str:
        return (f"AwsSnapshot({self.access_key_id[:4]}…, method={self.method!r}, long_term={self.long_term},"
                f" expires_at={self.expires_at})")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What ``doctor`` shows: where the credentials came from, identifiers only."""

    profile: str | None
    method: str
    long_term: bool
    expires_at: datetime | None
    region: str | None
    key_prefix: str  # "ASIA" or "AKIA": the kind of key, never more of it


# botocore's names for where credentials came from, and what the user runs to sign in again
_SIGN_IN = {
    "login": "aws login",
    "sso": "aws sso login",
    "custom-process": "aws login",
}


def _sign_in_command(method: str, profile: str | None) -> str:
    base = _SIGN_IN.get(method, "aws login")
    return base + (f" --profile {profile}" if profile else "")


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _aws_files() -> Iterator[Path]:
    """The files whose change means the user signed in again (the proxy then reloads, auto-refresh off)."""
    home = Path.home() / ".aws"
    yield Path(os.environ.get("AWS_CONFIG_FILE") or home / "config")
    yield Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials")
    for directory in (os.environ.get("AWS_LOGIN_CACHE_DIRECTORY") or str(home / "login" / "cache"),
                      str(home / "sso" / "cache")):
        path = Path(directory)
        if path.is_dir():
            yield from sorted(path.glob("*.json"))


def _files_signature() -> tuple[tuple[str, int], ...]:
    out = []
    for path in _aws_files():
        try:
            out.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


class AwsCredentialSource:
    """Hands out snapshots per the auto-refresh setting (see the module docstring). Thread-safe."""

    def __init__(self, profile: str | None = None, *, auto_refresh: bool, margin_s: float = DEFAULT_MARGIN_S) -> None:
        self.profile = profile or os.environ.get("AWS_PROFILE") or None
        self.margin_s = margin_s
        self._auto_refresh = auto_refresh
        self._lock = threading.Lock()
        self._session: Any = None
        self._credentials: Any = None
        self._signature: tuple[tuple[str, int], ...] = ()

    @property
    def auto_refresh(self) -> bool:
        return self._auto_refresh

    def set_auto_refresh(self, on: bool) -> None:
        """Switch mode; the next snapshot loads the session afresh with botocore's windows (or none)."""
        with self._lock:
            if on != self._auto_refresh:
                self._auto_refresh = on
                self._credentials = None

    def reload(self) -> None:
        """Forget the loaded credentials, so the next snapshot reads what the session holds now."""
        with self._lock:
            self._credentials = None

    def reload_if_signed_in_again(self) -> bool:
        """Reload when the AWS config, credentials or login/SSO cache files changed since the last load."""
        with self._lock:
            if self._credentials is None or _files_signature() == self._signature:
                return False
            self._credentials = None
            return True

    # --- loading ----------------------------------------------------------------------------------------

    def _load(self) -> Any:
        import botocore.exceptions
        import botocore.session

        self._signature = _files_signature()
        try:
            session = botocore.session.Session(profile=self.profile)
            credentials = session.get_credentials()
        except botocore.exceptions.ProfileNotFound as exc:
            raise ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED,
                              f"the AWS profile {self.profile!r} does not exist in your AWS config") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._expired_from(exc, method="") from exc
        if credentials is None:
            raise NoCredentialsFoundError(self.profile)
        if not self._auto_refresh and hasattr(credentials, "_advisory_refresh_timeout"):
            # botocore's documented constructor options (advisory_timeout / mandatory_timeout), set on the
            # loaded object: with both at zero it refreshes only credentials that already expired, and we
            # never hand those out, so with auto-refresh off botocore never refreshes.
            credentials._advisory_refresh_timeout = 0
            credentials._mandatory_refresh_timeout = 0
        self._session = session
        return credentials

    def _expired_from(self, exc: BaseException, *, method: str) -> CredentialsExpiredError:
        command = _sign_in_command(method or self._method_hint(), self.profile)
        detail = f"your AWS session can no longer be refreshed ({type(exc).__name__})"
        return CredentialsExpiredError(detail, command=command, auto_refresh=self._auto_refresh)

    def _method_hint(self) -> str:
        return str(getattr(self._credentials, "method", "") or "")

    # --- snapshots --------------------------------------------------------------------------------------

    def snapshot(self) -> AwsSnapshot:
        """One frozen, unexpired set of credentials, or ``CredentialsExpiredError`` / ``NoCredentialsFoundError``."""
        import botocore.exceptions

        with self._lock:
            if self._credentials is None:
                self._credentials = self._load()
            credentials = self._credentials
            method = str(getattr(credentials, "method", "") or "unknown")
            refreshable = hasattr(credentials, "refresh_needed")
            # SSO and web-identity credentials arrive "deferred": nothing is fetched until the first use, which
            # is the load itself, not a refresh; their expiry is checked after that fetch, below
            fetched = getattr(credentials, "_frozen_credentials", True) is not None
            if refreshable and fetched and not self._auto_refresh and credentials.refresh_needed(self.margin_s):
                raise self._expired_now(credentials, method)
            try:
                frozen = credentials.get_frozen_credentials()
            except (botocore.exceptions.BotoCoreError, RuntimeError) as exc:
                # LoginRefreshRequired, TokenRetrievalError (SSO), CredentialRetrievalError (process), or
                # botocore's "refreshed credentials are still expired"
                raise self._expired_from(exc, method=method) from exc
            expires_at = _aware(getattr(credentials, "_expiry_time", None)) if refreshable else None
        if expires_at is not None and expires_at - timedelta(seconds=self.margin_s) <= datetime.now(UTC):
            raise self._expired_now(credentials, method)
        return AwsSnapshot(str(frozen.access_key), str(frozen.secret_key), frozen.token or None, expires_at, method)

    def _expired_now(self, credentials: Any, method: str) -> CredentialsExpiredError:
        expires_at = _aware(getattr(credentials, "_expiry_time", None))
        if expires_at is None:
            detail = "your AWS session credentials expired"
        elif expires_at <= datetime.now(UTC):
            detail = f"your AWS session credentials expired at {expires_at.isoformat(timespec='seconds')}"
        else:
            detail = f"your AWS session credentials expire at {expires_at.isoformat(timespec='seconds')}"
        return CredentialsExpiredError(detail, command=_sign_in_command(method, self.profile),
                                       auto_refresh=self._auto_refresh)

    def region(self) -> str | None:
        """The profile's region (``AWS_REGION``/``AWS_DEFAULT_REGION``/config), for doctor's comparison."""
        import botocore.session

        session = self._session or botocore.session.Session(profile=self.profile)
        region = session.get_config_variable("region")
        return str(region) if region else None

    def info(self) -> SourceInfo:
        snapshot = self.snapshot()
        return SourceInfo(profile=self.profile, method=snapshot.method, long_term=snapshot.long_term,
                          expires_at=snapshot.expires_at, region=self.region(),
                          key_prefix=snapshot.access_key_id[:4])

    def sts_client(self, snapshot: AwsSnapshot, region: str) -> Any:
        """An STS client signed with ``snapshot``, honouring the profile's endpoint config
        (``AWS_ENDPOINT_URL_STS`` or a ``services`` section)."""
        import botocore.config
        import botocore.session

        session = botocore.session.Session(profile=self.profile)
        return session.create_client(
            "sts", region_name=region, aws_access_key_id=snapshot.access_key_id,
            aws_secret_access_key=snapshot.secret_access_key, aws_session_token=snapshot.session_token,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
        )
