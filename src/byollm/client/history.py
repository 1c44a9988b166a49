"""Chat input history that never holds a credential.

Why a filter and not just a file: people paste keys into the wrong window. A line that contains any secret
the client knows (the gateway token, a BYOK key, the current AWS key id, secret or session token) or that
looks like one (every shape ``byollm.redact`` knows, and any long opaque string) is kept out of the history
file, and out of the in-memory history too. The file is 0600.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from byollm.client.paths import ensure_private_dir, state_dir
from byollm.redact import contains_credential

__all__ = ["SafeHistory", "history_path", "looks_secret"]

# Stricter than the shared shapes on purpose: a history line is dropped whole, so anything long and opaque
# (a secret of a shape nobody knows yet) is kept out too.
_LONG_OPAQUE = re.compile(r"[A-Za-z0-9+/=_-]{40,}")
MAX_LINES = 1000


def history_path() -> Path:
    return state_dir() / "chat_history"


def looks_secret(line: str, known: Iterable[str] = ()) -> bool:
    return contains_credential(line, known=known) or _LONG_OPAQUE.search(line) is not None


class SafeHistory:
    """Append-only history lines, filtered by ``looks_secret`` against ``known()`` at each add."""

    def __init__(self, path: Path | None = None, known: Callable[[], Iterable[str]] = tuple) -> None:
        self.path = path or history_path()
        self._known = known

    def load(self) -> list[str]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        known = list(self._known())
        return [line for line in lines[-MAX_LINES:] if line and not looks_secret(line, known)]

    def add(self, line: str) -> bool:
        """Keep ``line`` unless it is a slash command's argument-free noise or might hold a secret."""
        text = line.strip()
        if not text or "\n" in text or looks_secret(text, list(self._known())):
            return False
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.chmod(self.path, 0o600)
        return True
