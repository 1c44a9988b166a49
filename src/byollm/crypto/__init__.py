"""Secrets at rest: the key-encryption key and AES-256-GCM sealing (see ``crypto.kek``)."""

from __future__ import annotations

from byollm.crypto.kek import (
    Kek,
    KekError,
    KeyRing,
    SecretDecryptionError,
    generate_kek_text,
    load_keyring,
)

__all__ = ["Kek", "KekError", "KeyRing", "SecretDecryptionError", "generate_kek_text", "load_keyring"]
