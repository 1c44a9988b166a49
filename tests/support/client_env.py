"""A client environment for tests: its own XDG dirs, a file token store, a real AWS config from the simulator.

Nothing here touches the real ``~/.aws``, keyring or config: ``HOME`` and the XDG dirs point into a tmp
directory, ``BYOLLM_TOKEN_STORE=file`` keeps secrets in a 0600 file there, and the AWS files are the ones
``byollm.sim.profiles.write_aws_profiles`` wrote (``credential_process``, ``aws login`` and long-term
profiles, all pointed at the simulator).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from byollm.client.config import ClientConfig, save_config
from byollm.client.tokenstore import GATEWAY_TOKEN, open_token_store
from byollm.sim import profiles
from support.stack import DEV_USER, Stack, Team

_CLEARED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
            "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CREDENTIAL_EXPIRATION", "BYOLLM_TOKEN", "BYOLLM_URL",
            "BYOLLM_TEAM", "PYTHON_KEYRING_BACKEND")


@dataclass
class ClientEnv:
    root: Path
    aws: profiles.ProfilePaths
    env: dict[str, str] = field(default_factory=dict)  # what a subprocess needs on top of os.environ

    @property
    def written_dirs(self) -> list[Path]:
        """Every directory the client may write to (config, data, state)."""
        return [self.root / "config", self.root / "data", self.root / "state"]

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        return {**base, **self.env, **extra}


def make_client_env(tmp: Path, stack: Stack, team: Team, monkeypatch: pytest.MonkeyPatch, *,
                    profile: str | None = "sim-process", auto_refresh: bool = True, credential_duration_s: int = 900,
                    login_credential_duration_s: int = 900, extra_env: Mapping[str, str] | None = None) -> ClientEnv:
    """Log a client in to ``stack`` as ``team``'s member, with AWS profiles in ``tmp/aws``."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    written = profiles.write_aws_profiles(tmp / "aws", stack.sim.url, user=DEV_USER,
                                          credential_duration_s=credential_duration_s,
                                          login_credential_duration_s=login_credential_duration_s)
    env = {
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "BYOLLM_TOKEN_STORE": "file",
        **written.env,
        **(extra_env or {}),
    }
    if profile:
        env["AWS_PROFILE"] = profile
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    save_config(ClientConfig(gateway_url=stack.url, auto_refresh=auto_refresh, default_model="claude-sonnet-4-6"))
    open_token_store().set(GATEWAY_TOKEN, team.token)
    return ClientEnv(root=tmp, aws=written, env=env)


@dataclass
class RunningProxy:
    url: str
    key: str
    lines: list[str]
    ctx: object

    def said(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def running_proxy(*, margin_s: float | None = None, auto_refresh_from_config: bool = True) -> Iterator[RunningProxy]:
    """``byollm proxy`` in-process on a free loopback port, for the current (monkeypatched) environment."""
    from byollm.api.serving import ServerThread
    from byollm.client.config import load_config
    from byollm.client.context import open_context
    from byollm.client.proxy import ProxyState, build_proxy_app, new_proxy_key

    ctx = open_context(margin_s=margin_s)
    key = new_proxy_key()
    lines: list[str] = []
    state = ProxyState(ctx.config.gateway_url or "", ctx.attacher, key, lines.append,
                       auto_refresh_setting=(lambda: load_config().auto_refresh) if auto_refresh_from_config else None)
    try:
        with ServerThread(build_proxy_app(state)) as server:
            yield RunningProxy(server.url, key, lines, ctx)
    finally:
        ctx.close()
