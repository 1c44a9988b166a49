"""The client's settings file: which gateway, which team, which AWS profile, auto-refresh, default model.

Why a fixed set of typed keys: ``byollm config set`` must refuse a typo loudly rather than store a setting
nothing reads, and no key is ever a secret, so the file can be shown, copied and scanned freely. The token
and BYOK keys live in the token store (``client.tokenstore``), never here.

The file is JSON at ``$XDG_CONFIG_HOME/byollm/client.json``, mode 0600.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from byollm.client.paths import config_dir, write_private

__all__ = ["SETTINGS", "ClientConfig", "ConfigError", "config_path", "load_config", "save_config", "set_value"]


class ConfigError(ValueError):
    """A setting name or value the client does not accept; the message says what would be accepted."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    gateway_url: str | None = None
    team: str | None = None
    profile: str | None = None
    auto_refresh: bool = False
    default_model: str = "auto"
    proxy_port: int = 8788


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "on", "yes", "1"):
        return True
    if lowered in ("false", "off", "no", "0"):
        return False
    raise ConfigError("expected true or false")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError("expected a port number") from None
    if not 1 <= value <= 65535:
        raise ConfigError("expected a port number between 1 and 65535")
    return value


def _url(text: str) -> str:
    value = text.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError("expected an http:// or https:// URL")
    return value


def _name(text: str) -> str | None:
    value = text.strip()
    return value or None


def _model(text: str) -> str:
    value = text.strip()
    if not value:
        raise ConfigError("expected a model name or auto")
    return value


SETTINGS: Mapping[str, tuple[Callable[[str], Any], str]] = {
    "gateway_url": (_url, "the byollm gateway URL (`byollm login` sets it)"),
    "team": (_name, "the team UID to act in, when your token can act in several"),
    "profile": (_name, "the AWS profile to use (default: AWS_PROFILE, then botocore's default chain)"),
    "auto_refresh": (_bool, "true: refresh AWS session credentials as far as the session allows;"
                            " false: stop when they expire and ask you to run `aws login`"),
    "default_model": (_model, "the model `byollm chat` and `byollm ask` use (a model name or auto)"),
    "proxy_port": (_port, "the loopback port `byollm proxy` listens on"),
}


def config_path() -> Path:
    return config_dir() / "client.json"


def load_config(path: Path | None = None) -> ClientConfig:
    """The saved settings (defaults for anything missing); unknown keys in the file are ignored."""
    target = path or config_path()
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ClientConfig()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{target} is not readable JSON ({type(exc).__name__}); fix or delete it") from exc
    known = {f.name for f in fields(ClientConfig)}
    values = {k: v for k, v in raw.items() if k in known} if isinstance(raw, dict) else {}
    return replace(ClientConfig(), **values)


def save_config(config: ClientConfig, path: Path | None = None) -> Path:
    target = path or config_path()
    write_private(target, json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
    return target


def set_value(config: ClientConfig, key: str, text: str) -> ClientConfig:
    """``config`` with ``key`` parsed from ``text``; ``ConfigError`` names the accepted keys or values."""
    setting = SETTINGS.get(key.replace("-", "_"))
    if setting is None:
        raise ConfigError(f"unknown setting {key!r}; settings: {', '.join(SETTINGS)}")
    parse, _ = setting
    try:
        value = parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return replace(config, **{key.replace("-", "_"): value})
