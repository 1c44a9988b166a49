"""``AwsCredentialSource`` on credential kinds the simulator does not write: environment variables and
SSO-style deferred credentials (fetched on first use)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.credentials
import botocore.session
import pytest

from byollm.client.aws import AwsCredentialSource, CredentialsExpiredError, NoCredentialsFoundError


@pytest.fixture(autouse=True)
def _empty_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CREDENTIAL_EXPIRATION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))


def _deferred(monkeypatch: pytest.MonkeyPatch, lifetimes: list[float]) -> list[int]:
    """Make botocore's chain return SSO-style deferred credentials; returns the fetch counter."""
    fetched = [0]

    def fetch() -> dict[str, Any]:
        lifetime = lifetimes[min(fetched[0], len(lifetimes) - 1)]
        fetched[0] += 1
        return {"access_key": f"ASIASSO{fetched[0]:013d}", "secret_key": "s" * 40, "token": "t" * 60,
                "expiry_time": (datetime.now(UTC) + timedelta(seconds=lifetime)).isoformat()}

    def get_credentials(self: Any) -> Any:
        return botocore.credentials.DeferredRefreshableCredentials(refresh_using=fetch, method="sso")

    monkeypatch.setattr(botocore.session.Session, "get_credentials", get_credentials)
    return fetched


def test_env_credentials_have_no_expiry_and_long_term_ones_are_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" * 40)
    snapshot = AwsCredentialSource(auto_refresh=False).snapshot()
    assert snapshot.method == "env"
    assert snapshot.long_term
    assert snapshot.expires_at is None
    assert "x-byollm-aws-session-token" not in snapshot.headers()


def test_no_credentials_names_the_sign_in_command() -> None:
    with pytest.raises(NoCredentialsFoundError) as caught:
        AwsCredentialSource(auto_refresh=True).snapshot()
    assert caught.value.command == "aws login"


def test_deferred_sso_credentials_load_once_with_auto_refresh_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = _deferred(monkeypatch, [3600])
    source = AwsCredentialSource("dev-sso", auto_refresh=False)
    first = source.snapshot()
    second = source.snapshot()
    assert first.access_key_id == second.access_key_id
    assert fetched[0] == 1
    assert first.expires_at is not None


def test_deferred_sso_credentials_that_arrive_nearly_expired_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _deferred(monkeypatch, [2])
    with pytest.raises(CredentialsExpiredError) as caught:
        AwsCredentialSource("dev-sso", auto_refresh=False).snapshot()
    assert caught.value.command == "aws sso login --profile dev-sso"
    assert "byollm config set auto_refresh true" in caught.value.sentence


def test_auto_refresh_on_refreshes_deferred_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = _deferred(monkeypatch, [60, 3600])  # the first set sits inside botocore's refresh windows
    source = AwsCredentialSource("dev-sso", auto_refresh=True)
    first = source.snapshot()
    second = source.snapshot()
    assert fetched[0] == 2
    assert first.access_key_id != second.access_key_id
