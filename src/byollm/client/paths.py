"""Where the client keeps its files: the XDG base directories, never the current directory.

- config (``$XDG_CONFIG_HOME/byollm/client.json``): settings only, no secret;
- data (``$XDG_DATA_HOME/byollm/``): the token-store fallback file when no OS keyring exists;
- state (``$XDG_STATE_HOME/byollm/``): chat input history and the client log.

Directories are created 0700 and files 0600: even the files without secrets say nothing to other users.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_dir", "data_dir", "ensure_private_dir", "state_dir", "write_private"]


def _xdg(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "").strip()
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / default
    return base / "byollm"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share")


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state")


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to a 0600 file (created 0600, so it is never readable by others)."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
