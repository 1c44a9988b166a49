"""Local credentials for the interactive flow, resolved and refreshed by botocore's own provider chain."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.credentials
import botocore.exceptions
import botocore.session
import httpx
import pytest

from byollm.sim import profiles
from byollm.sim.server import SimServer
from byollm.sim.signin import DpopError, LoginSessions, verify_dpop_proof

USER = "byollm-dev"
USER_ARN = "arn:aws:iam::111122223333:user/byollm-dev"


@pytest.fixture
def written(sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> profiles.ProfilePaths:
    """Profiles whose login credentials are already inside botocore's 10-minute mandatory refresh window."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    paths = profiles.write_aws_profiles(tmp_path, sim.url, user=USER, login_credential_duration_s=120)
    for name, value in paths.env.items():
        monkeypatch.setenv(name, value)
    return paths


def caller_arn(session: botocore.session.Session) -> str:
    sts = session.create_client("sts", region_name="us-east-1")
    return str(sts.get_caller_identity()["Arn"])


def test_writer_keeps_everything_under_the_named_directory(written: profiles.ProfilePaths, tmp_path: Path) -> None:
    for path in (written.config_file, written.credentials_file, written.login_cache_dir):
        assert tmp_path in path.parents
    assert written.env["AWS_ENDPOINT_URL_SIGNIN"].endswith("/signin")
    assert written.env[profiles.LOGIN_CACHE_ENV] == str(written.login_cache_dir)
    cache = json.loads(profiles.login_cache_file(written.login_cache_dir, USER_ARN).read_text())
    assert cache["dpopKey"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert cache["accessToken"]["accountId"] == "111122223333"


def test_credential_process_profile_is_refreshed_by_botocore(written: profiles.ProfilePaths) -> None:
    session = botocore.session.Session(profile=written.process_profile)
    credentials = session.get_credentials()
    assert isinstance(credentials, botocore.credentials.RefreshableCredentials)
    assert credentials.method == "custom-process"
    first = credentials.get_frozen_credentials()
    assert first.access_key.startswith("ASIA")
    assert first.token
    # 900 s credentials sit inside botocore's 15-minute advisory window: the next use refreshes them
    second = credentials.get_frozen_credentials()
    assert second.access_key.startswith("ASIA")
    assert second.access_key != first.access_key
    assert caller_arn(session) == USER_ARN


def test_login_session_refreshes_through_the_signin_endpoint(written: profiles.ProfilePaths) -> None:
    cache_file = profiles.login_cache_file(written.login_cache_dir, written.login_session)
    before = json.loads(cache_file.read_text())
    session = botocore.session.Session(profile=written.login_profile)
    credentials = session.get_credentials()
    assert credentials.method == "login"
    refreshed = credentials.get_frozen_credentials()
    assert refreshed.access_key != before["accessToken"]["accessKeyId"]
    after = json.loads(cache_file.read_text())
    assert after["accessToken"]["accessKeyId"] == refreshed.access_key
    assert after["refreshToken"] != before["refreshToken"]
    assert caller_arn(session) == USER_ARN


def test_ended_login_session_surfaces_botocores_refresh_required(
    sim: SimServer, written: profiles.ProfilePaths
) -> None:
    ended = httpx.post(f"{sim.url}/signin/_sim/end-sessions", json={"user": USER})
    assert ended.json()["ended"] >= 1
    credentials = botocore.session.Session(profile=written.login_profile).get_credentials()
    with pytest.raises(botocore.exceptions.LoginRefreshRequired):
        credentials.get_frozen_credentials()


def test_login_session_that_ran_out_is_refused(sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = profiles.write_aws_profiles(
        tmp_path, sim.url, user=USER, login_credential_duration_s=60, login_session_duration_s=1
    )
    for name, value in paths.env.items():
        monkeypatch.setenv(name, value)
    time.sleep(1.1)
    credentials = botocore.session.Session(profile=paths.login_profile).get_credentials()
    with pytest.raises(botocore.exceptions.LoginRefreshRequired):
        credentials.get_frozen_credentials()


def test_long_term_and_env_credentials(written: profiles.ProfilePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    long_term = botocore.session.Session(profile=written.long_term_profile).get_credentials()
    assert long_term.access_key.startswith("AKIA")
    assert long_term.token is None
    for name, value in written.env_credentials.items():
        monkeypatch.setenv(name, value)
    session = botocore.session.Session()
    credentials = session.get_credentials()
    assert credentials.method == "env"
    assert credentials.access_key.startswith("ASIA")
    assert credentials.token
    assert caller_arn(session) == USER_ARN


def test_credential_process_command_reports_failures(sim: SimServer) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "byollm.sim.profiles", "credential-process", "--sim", sim.url, "--user", "nobody"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert "nobody" in run.stderr
    assert run.stdout == ""


# ------------------------------------------------------------------------ DPoP proofs, built by botocore


def botocore_proof(url: str, *, ts: int | None = None) -> tuple[str, Any]:
    from awscrt.crypto import EC, ECType

    key = EC.new_generate(ECType.P_256)
    return botocore.credentials._build_dpop_header(key, url, ts=ts), key


def test_botocore_dpop_proof_verifies() -> None:
    proof, _ = botocore_proof("http://sim/signin/v1/token")
    thumbprint, jti = verify_dpop_proof(proof, method="POST", url="http://sim/signin/v1/token", now=time.time())
    assert thumbprint
    assert jti
    sessions = LoginSessions()
    assert sessions.remember_jti(jti)
    assert not sessions.remember_jti(jti)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p[:-4] + ("AAAA" if not p.endswith("AAAA") else "BBBB"), "signature"),
        (lambda p: "x" + p, "compact JWS|signature|JSON"),
    ],
)
def test_tampered_dpop_proofs_are_refused(mutate: Any, expected: str) -> None:
    proof, _ = botocore_proof("http://sim/signin/v1/token")
    with pytest.raises(DpopError, match=expected):
        verify_dpop_proof(mutate(proof), method="POST", url="http://sim/signin/v1/token", now=time.time())


def test_dpop_proof_for_another_url_or_too_old_is_refused() -> None:
    proof, _ = botocore_proof("http://elsewhere/v1/token")
    with pytest.raises(DpopError, match="htu"):
        verify_dpop_proof(proof, method="POST", url="http://sim/signin/v1/token", now=time.time())
    old, _ = botocore_proof("http://sim/signin/v1/token", ts=int(time.time()) - 3600)
    with pytest.raises(DpopError, match="iat"):
        verify_dpop_proof(old, method="POST", url="http://sim/signin/v1/token", now=time.time())
    with pytest.raises(DpopError, match="htm"):
        verify_dpop_proof(proof, method="GET", url="http://elsewhere/v1/token", now=time.time())
