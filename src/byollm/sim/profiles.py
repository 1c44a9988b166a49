"""Local AWS credentials pointing at the simulator, so botocore's own provider chain runs for real.

:func:`write_aws_profiles` writes an AWS shared config and credentials file into a directory the caller
names (never ``~/.aws``) and returns the environment variables that make botocore use them:

- ``sim-process``: a ``credential_process`` profile. botocore runs
  ``python -m byollm.sim.profiles credential-process --sim URL --user NAME --duration S``, which asks
  the simulator for fresh short-lived session credentials and prints them in the
  ``{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}`` shape; botocore
  refreshes them through its ``RefreshableCredentials`` as they near expiry.
- ``sim-login``: an ``aws login`` profile (``login_session = <user ARN>``). The writer does what the
  browser half of ``aws login`` does: it creates a P-256 DPoP key, starts a sign-in session bound to it
  (``POST /signin/_sim/login``) and writes the login cache file botocore reads from
  ``AWS_LOGIN_CACHE_DIRECTORY``. botocore then refreshes through the simulated ``signin``
  CreateOAuth2Token with a DPoP proof signed by that key.
- ``sim-long-term``: the user's long-term ``AKIA…`` key in the credentials file (no session token), for
  the "long-term keys are refused" case.
- ``env_credentials``: plain ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` values.

Every profile uses a ``services`` section that points STS, IAM, Bedrock and Sign-In at the simulator; the
returned ``env`` also sets the ``AWS_ENDPOINT_URL_*`` variables for code that ignores profiles.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_USER",
    "LOGIN_CACHE_ENV",
    "ProfilePaths",
    "SimRequestError",
    "endpoint_env",
    "fetch_session_credentials",
    "login_cache_file",
    "main",
    "write_aws_profiles",
]

DEFAULT_USER = "byollm-dev"
LOGIN_CACHE_ENV = "AWS_LOGIN_CACHE_DIRECTORY"
PROCESS_PROFILE = "sim-process"
LOGIN_PROFILE = "sim-login"
LONG_TERM_PROFILE = "sim-long-term"
_SERVICES_SECTION = "byollm-sim"
_HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ProfilePaths:
    """What :func:`write_aws_profiles` wrote, and the environment that makes botocore use it."""

    config_file: Path
    credentials_file: Path
    login_cache_dir: Path
    env: Mapping[str, str]
    login_session: str
    env_credentials: Mapping[str, str]
    process_profile: str = PROCESS_PROFILE
    login_profile: str = LOGIN_PROFILE
    long_term_profile: str = LONG_TERM_PROFILE


class SimRequestError(RuntimeError):
    """The simulator refused a request the writer or the credential process made."""


def _call(sim_url: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """POST (or GET when ``body`` is None) JSON to the simulator; raise SimRequestError on refusal."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the simulator the caller named
        sim_url.rstrip("/") + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:  # noqa: S310
            result = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SimRequestError(f"{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SimRequestError(f"{path}: the simulator at {sim_url} is unreachable: {exc}") from exc
    if not isinstance(result, dict):
        raise SimRequestError(f"{path}: expected a JSON object")
    return result


def fetch_session_credentials(sim_url: str, *, user: str, duration_s: int) -> dict[str, Any]:
    """Fresh session credentials for ``user``, in ``credential_process`` output shape."""
    return _call(sim_url, "/signin/_sim/session-credentials", {"user": user, "duration_s": duration_s})


def endpoint_env(sim_url: str) -> dict[str, str]:
    """``AWS_ENDPOINT_URL_*`` variables pointing every simulated AWS service at ``sim_url``."""
    base = sim_url.rstrip("/")
    return {
        "AWS_ENDPOINT_URL_STS": base,
        "AWS_ENDPOINT_URL_IAM": base,
        "AWS_ENDPOINT_URL_BEDROCK": base,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": base,
        "AWS_ENDPOINT_URL_SIGNIN": f"{base}/signin",
    }


def login_cache_file(cache_dir: Path, login_session: str) -> Path:
    """Where botocore looks for a login session's token: ``sha256(session name).json``."""
    return cache_dir / f"{hashlib.sha256(login_session.encode()).hexdigest()}.json"


def _b64url(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()


def _new_dpop_key() -> tuple[str, dict[str, str]]:
    """A P-256 key as the PEM botocore loads (``dpopKey``) and its public JWK for the simulator.

    cryptography is imported here, not at module level, so the credential-process command stays quick.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    numbers = key.public_key().public_numbers()
    return pem, {"kty": "EC", "crv": "P-256", "x": _b64url(numbers.x), "y": _b64url(numbers.y)}


def _long_term_key(sim_url: str, user: str) -> tuple[str, str]:
    """The user's first active AKIA key, read from the simulator's world description."""
    world = _call(sim_url, "/_sim/world")
    for account_id, account in (world.get("accounts") or {}).items():
        for name, data in (account.get("users") or {}).items():
            if user not in (name, f"{account_id}/{name}"):
                continue
            for key in data.get("access_keys") or []:
                if key.get("active", True):
                    return str(key["id"]), str(key["secret"])
    raise SimRequestError(f"the simulated world has no IAM user {user!r} with an active access key")


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def write_aws_profiles(
    directory: str | Path,
    sim_url: str,
    *,
    user: str = DEFAULT_USER,
    region: str = "us-east-1",
    credential_duration_s: int = 900,
    login_credential_duration_s: int = 900,
    login_session_duration_s: int = 12 * 3600,
    python: str = sys.executable,
) -> ProfilePaths:
    """Write config, credentials and the login cache under ``directory``; see the module docstring."""
    root = Path(directory)
    cache_dir = root / "login-cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    sim = sim_url.rstrip("/")

    pem, jwk = _new_dpop_key()
    login = _call(
        sim,
        "/signin/_sim/login",
        {
            "user": user,
            "dpop_jwk": jwk,
            "session_duration_s": login_session_duration_s,
            "credential_duration_s": login_credential_duration_s,
        },
    )
    login_session = str(login["principalArn"])
    cache = {
        "accessToken": login["accessToken"],
        "tokenType": login["tokenType"],
        "refreshToken": login["refreshToken"],
        "clientId": login["clientId"],
        "dpopKey": pem,
        "signInRegion": region,
    }
    _write_private(login_cache_file(cache_dir, login_session), json.dumps(cache, indent=2))

    access_key_id, secret = _long_term_key(sim, user)
    credentials_file = root / "credentials"
    _write_private(
        credentials_file,
        f"[{LONG_TERM_PROFILE}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n",
    )

    duration = str(credential_duration_s)
    command = shlex.join(
        [
            python,
            "-m",
            "byollm.sim.profiles",
            "credential-process",
            "--sim",
            sim,
            "--user",
            user,
            "--duration",
            duration,
        ]
    )
    endpoints = endpoint_env(sim)
    services = "".join(
        f"{name} =\n  endpoint_url = {endpoints[var]}\n"
        for name, var in (
            ("sts", "AWS_ENDPOINT_URL_STS"),
            ("iam", "AWS_ENDPOINT_URL_IAM"),
            ("bedrock", "AWS_ENDPOINT_URL_BEDROCK"),
            ("bedrock_runtime", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
            ("signin", "AWS_ENDPOINT_URL_SIGNIN"),
        )
    )
    common = f"region = {region}\nservices = {_SERVICES_SECTION}\n"
    config_file = root / "config"
    config_file.write_text(
        f"[profile {PROCESS_PROFILE}]\n{common}credential_process = {command}\n\n"
        f"[profile {LOGIN_PROFILE}]\n{common}login_session = {login_session}\n\n"
        f"[profile {LONG_TERM_PROFILE}]\n{common}\n"
        f"[services {_SERVICES_SECTION}]\n{services}",
        encoding="utf-8",
    )

    session = fetch_session_credentials(sim, user=user, duration_s=credential_duration_s)
    env_credentials = {
        "AWS_ACCESS_KEY_ID": str(session["AccessKeyId"]),
        "AWS_SECRET_ACCESS_KEY": str(session["SecretAccessKey"]),
        "AWS_SESSION_TOKEN": str(session["SessionToken"]),
    }
    env = {
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
        LOGIN_CACHE_ENV: str(cache_dir),
        **endpoints,
    }
    return ProfilePaths(
        config_file=config_file,
        credentials_file=credentials_file,
        login_cache_dir=cache_dir,
        env=env,
        login_session=login_session,
        env_credentials=env_credentials,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m byollm.sim.profiles credential-process --sim URL --user NAME --duration S``."""
    parser = argparse.ArgumentParser(prog="python -m byollm.sim.profiles")
    commands = parser.add_subparsers(dest="command", required=True)
    process = commands.add_parser("credential-process", help="print session credentials for botocore")
    process.add_argument("--sim", required=True, help="the simulator's base URL")
    process.add_argument("--user", default=DEFAULT_USER, help="IAM user of the simulated world")
    process.add_argument("--duration", type=int, default=900, help="credential lifetime in seconds")
    args = parser.parse_args(argv)
    try:
        credentials = fetch_session_credentials(args.sim, user=args.user, duration_s=args.duration)
    except SimRequestError as exc:
        print(f"credential-process: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(credentials))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
