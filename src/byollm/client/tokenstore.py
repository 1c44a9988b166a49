"""Where the gateway token and BYOK keys live: the OS keyring, or one 0600 file where no keyring exists.

Why two backends: desktops have a keyring (macOS Keychain, Secret Service, Windows Credential Locker), but
servers and containers often have none (``keyring`` then reports ``keyring.backends.fail.Keyring``). Refusing
to work there would push users to environment variables in shell profiles, which is worse; so the client
falls back to ``$XDG_DATA_HOME/byollm/secrets.json``, created 0600 in a 0700 directory, and says so every
time it writes there (``TokenStore.description``). The file is not encrypted: a key stored beside it would
protect nothing, and the file mode is the real protection.

``BYOLLM_TOKEN_STORE=keyring|file`` forces a backend (tests force ``file`` so they never touch a real
keyring). ``BYOLLM_TOKEN`` overrides the stored gateway token for one process without storing it.

This is the only place the client keeps a secret. Nothing here logs or prints a value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from byollm.client.paths import data_dir, write_private

__all__ = [
    "BYOK_PROVIDERS",
    "GATEWAY_TOKEN",
    "FileBackend",
    "KeyringBackend",
    "TokenStore",
    "TokenStoreError",
    "byok_entry",
    "open_token_store",
    "secrets_file_path",
]

SERVICE = "byollm"
GATEWAY_TOKEN = "gateway-token"
BYOK_PROVIDERS = ("anthropic", "openai", "google")
STORE_ENV = "BYOLLM_TOKEN_STORE"
TOKEN_ENV = "BYOLLM_TOKEN"


class TokenStoreError(RuntimeError):
    """The store could not be read or written; the message names the backend, never a value."""


def byok_entry(provider: str) -> str:
    if provider not in BYOK_PROVIDERS:
        raise TokenStoreError(f"unknown provider {provider!r}; BYOK providers: {', '.join(BYOK_PROVIDERS)}")
    return f"byok-{provider}"


class _Backend(Protocol):
    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> bool: ...


class KeyringBackend:
    """The OS keyring through ``keyring``, one entry per name under the service ``byollm``."""

    def __init__(self, keyring_module: object) -> None:
        self._keyring = keyring_module

    def get(self, name: str) -> str | None:
        value = self._keyring.get_password(SERVICE, name)  # type: ignore[attr-defined]
        return str(value) if value else None

    def set(self, name: str, value: str) -> None:
        self._keyring.set_password(SERVICE, name, value)  # type: ignore[attr-defined]

    def delete(self, name: str) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            self._keyring.delete_password(SERVICE, name)  # type: ignore[attr-defined]
        except PasswordDeleteError:
            return False
        return True


class FileBackend:
    """A JSON object in a 0600 file; rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise TokenStoreError(f"{self.path} is unreadable ({type(exc).__name__})") from None
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def get(self, name: str) -> str | None:
        return self._read().get(name) or None

    def set(self, name: str, value: str) -> None:
        entries = self._read()
        entries[name] = value
        write_private(self.path, json.dumps(entries, indent=2, sort_keys=True) + "\n")

    def delete(self, name: str) -> bool:
        entries = self._read()
        if name not in entries:
            return False
        del entries[name]
        write_private(self.path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
        return True


def secrets_file_path() -> Path:
    return data_dir() / "secrets.json"


@dataclass
class TokenStore:
    backend: _Backend
    kind: str  # "keyring" or "file"
    description: str  # said to the user whenever a secret is written

    def get(self, name: str) -> str | None:
        return self.backend.get(name)

    def set(self, name: str, value: str) -> None:
        if not value or value != value.strip() or "\n" in value:
            raise TokenStoreError("the value is empty or has surrounding whitespace or line breaks")
        self.backend.set(name, value)

    def delete(self, name: str) -> bool:
        return self.backend.delete(name)

    def gateway_token(self) -> str | None:
        """``BYOLLM_TOKEN`` if set (never stored), else the stored token."""
        return os.environ.get(TOKEN_ENV, "").strip() or self.get(GATEWAY_TOKEN)

    def byok_keys(self) -> dict[str, str]:
        return {p: v for p in BYOK_PROVIDERS if (v := self.get(byok_entry(p)))}


def _usable_keyring() -> object | None:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


def open_token_store() -> TokenStore:
    """The keyring when one works (or ``BYOLLM_TOKEN_STORE`` says which), else the 0600 file."""
    forced = os.environ.get(STORE_ENV, "").strip().lower()
    if forced not in ("", "keyring", "file"):
        raise TokenStoreError(f"{STORE_ENV} must be keyring or file")
    module = None if forced == "file" else _usable_keyring()
    if forced == "keyring" and module is None:
        raise TokenStoreError(f"{STORE_ENV}=keyring but no OS keyring backend is available")
    if module is not None:
        return TokenStore(KeyringBackend(module), "keyring", "the OS keyring")
    path = secrets_file_path()
    reason = "" if forced == "file" else "no OS keyring backend is available, so "
    return TokenStore(FileBackend(path), "file",
                      f"{path} ({reason}a plain file readable only by you: mode 0600, not encrypted)")
