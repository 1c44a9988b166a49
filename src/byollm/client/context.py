"""Assemble what every client command needs from the saved config, the token store and the flags.

Why one function: ``chat``, ``ask``, ``proxy`` and ``doctor`` must agree on which gateway, token, team,
AWS profile and auto-refresh setting apply (flags over environment over the config file), and must all fail
the same way, naming the command that fixes it, when something is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from byollm.client.attach import Attacher
from byollm.client.aws import AwsCredentialSource
from byollm.client.config import ClientConfig, load_config
from byollm.client.gateway import GatewayClient
from byollm.client.tokenstore import TokenStore, open_token_store

__all__ = ["ClientContext", "LoginResult", "NotLoggedInError", "login", "logout", "open_context"]


class NotLoggedInError(RuntimeError):
    """No gateway URL or token: ``byollm login`` fixes it."""


@dataclass
class ClientContext:
    config: ClientConfig
    store: TokenStore
    gateway: GatewayClient
    aws: AwsCredentialSource
    attacher: Attacher

    def close(self) -> None:
        self.gateway.close()

    def __enter__(self) -> ClientContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_context(*, profile: str | None = None, auto_refresh: bool | None = None,
                 margin_s: float | None = None) -> ClientContext:
    config = load_config()
    store = open_token_store()
    token = store.gateway_token()
    if not config.gateway_url or not token:
        missing = "gateway URL" if not config.gateway_url else "gateway token"
        raise NotLoggedInError(f"no {missing} is configured; run `byollm login` first")
    aws = AwsCredentialSource(profile or config.profile,
                              auto_refresh=config.auto_refresh if auto_refresh is None else auto_refresh,
                              **({"margin_s": margin_s} if margin_s is not None else {}))
    gateway = GatewayClient(config.gateway_url, token, team=config.team)
    attacher = Attacher(gateway, token, aws, store.byok_keys(), team=config.team)
    return ClientContext(config=config, store=store, gateway=gateway, aws=aws, attacher=attacher)


@dataclass(frozen=True, slots=True)
class LoginResult:
    gateway_url: str
    principal: str
    teams: list[str]
    team: str | None
    store_description: str


def login(gateway_url: str, token: str, *, team: str | None = None, verify: bool = True) -> LoginResult:
    """Check the token against the gateway (``GET /api/v1/me``), then keep the URL (config) and the token
    (token store). Raises ``GatewayError`` (nothing is saved) when the gateway refuses the token."""
    from dataclasses import replace

    from byollm.client.config import save_config, set_value
    from byollm.client.tokenstore import GATEWAY_TOKEN

    config = set_value(load_config(), "gateway_url", gateway_url)
    assert config.gateway_url is not None
    principal, teams = "(not verified)", []
    if verify:
        with GatewayClient(config.gateway_url, token, team=team) as gateway:
            me = gateway.me()
        principal = f"{me.get('kind')} {me.get('principal_uid')}"
        teams = [str(t.get("uid")) for t in me.get("teams") or []]
        team = team or (str(me["token_team_uid"]) if me.get("token_team_uid") else None)
    store = open_token_store()
    store.set(GATEWAY_TOKEN, token)
    save_config(replace(config, team=team or config.team))
    return LoginResult(config.gateway_url, principal, teams, team or config.team, store.description)


def logout() -> tuple[bool, str]:
    from byollm.client.tokenstore import GATEWAY_TOKEN

    store = open_token_store()
    return store.delete(GATEWAY_TOKEN), store.description
