"""The key-encryption key (KEK): where it comes from, and sealing secrets with it.

Why one KEK: operator provider keys and (later) OIDC signing keys are stored in the database so replicas can
share them; the database alone must not be enough to read them. Every secret is sealed with AES-256-GCM
under the KEK, with a random 96-bit nonce and the secret's name as associated data (so a ciphertext copied
onto another secret's row does not decrypt). Each row stores the KEK's id (the first 8 bytes of the key's
SHA-256, hex): enough to tell which key sealed it, useless for recovering the key.

Where the KEK comes from:

- ``BYOLLM_KEK`` (``settings.kek``): urlsafe base64 of 32 bytes. Replicas share it through the operator's
  secret manager.
- otherwise (the embedded default) the file ``kek`` in the data directory, created on first use with mode
  0600. A key file readable or writable by group or others is refused rather than silently trusted.

Previous keys (``BYOLLM_KEK_PREVIOUS``, comma-separated, or the file ``kek.previous`` written during an
embedded rotation) can still open old rows until ``byollm kek rotate`` re-seals them under the current key.

Nothing here prints, logs or raises with key material; ``Kek.__repr__`` shows the id only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from byollm.errors import ByollmError, ErrorClass
from byollm.settings import Settings

__all__ = [
    "KEY_FILE",
    "PREVIOUS_KEY_FILE",
    "Kek",
    "KekError",
    "KeyRing",
    "SecretDecryptionError",
    "generate_kek_text",
    "load_keyring",
    "read_key_file",
    "write_key_file",
]

KEY_FILE = "kek"
PREVIOUS_KEY_FILE = "kek.previous"
KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT_V1 = b"\x01"
_AAD_PREFIX = b"byollm-secret:v1:"


class KekError(ByollmError):
    """The KEK is missing, malformed, unsafe on disk, or does not match the stored secrets."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorClass.INTERNAL_ERROR, detail)


class SecretDecryptionError(KekError):
    """A ciphertext failed authentication: wrong key, tampering, or a row moved to another name."""


def generate_kek_text() -> str:
    """A new random KEK as urlsafe base64 text (what ``BYOLLM_KEK`` and the ``kek`` file hold)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True, slots=True)
class Kek:
    """One 256-bit key. Build it with ``Kek.from_text``; its repr never shows the key."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise KekError(f"a key-encryption key must be {KEY_BYTES} bytes")

    @classmethod
    def from_text(cls, text: str, *, source: str = "BYOLLM_KEK") -> Kek:
        """Decode urlsafe base64 (padding optional). ``source`` names where it came from in errors."""
        cleaned = text.strip()
        try:
            key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            raise KekError(f"{source} is not urlsafe base64 text") from None
        if len(key) != KEY_BYTES:
            raise KekError(f"{source} must decode to {KEY_BYTES} bytes (it decodes to {len(key)})")
        return cls(key)

    @property
    def kek_id(self) -> str:
        """A non-secret fingerprint naming this key in secret rows and messages."""
        return hashlib.sha256(self.key).digest()[:8].hex()

    def to_text(self) -> str:
        return base64.urlsafe_b64encode(self.key).decode("ascii")

    def encrypt(self, plaintext: bytes, *, name: str) -> bytes:
        """Seal ``plaintext`` for the secret called ``name``: version byte, nonce, ciphertext and tag."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return _FORMAT_V1 + nonce + AESGCM(self.key).encrypt(nonce, plaintext, _aad(name))

    def decrypt(self, blob: bytes, *, name: str) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _FORMAT_V1:
            raise SecretDecryptionError(f"secret {name!r} has an unknown ciphertext format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return AESGCM(self.key).decrypt(nonce, sealed, _aad(name))
        except InvalidTag:
            raise SecretDecryptionError(
                f"secret {name!r} failed authentication under key {self.kek_id}: the row was altered or"
                " sealed for another name"
            ) from None


def _aad(name: str) -> bytes:
    return _AAD_PREFIX + name.encode("utf-8")


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The current KEK, which seals, and previous KEKs, which may still open older rows."""

    current: Kek
    previous: tuple[Kek, ...] = ()
    source: str = "BYOLLM_KEK"  # a human description of where the current key came from

    @property
    def known_ids(self) -> frozenset[str]:
        return frozenset({self.current.kek_id, *(k.kek_id for k in self.previous)})

    def for_id(self, kek_id: str) -> Kek | None:
        for kek in (self.current, *self.previous):
            if kek.kek_id == kek_id:
                return kek
        return None


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KekError(
            f"refusing to use the key file {path}: its mode is {mode:04o}, so group or other users can read"
            f" or change it; run `chmod 600 {path}` if it has not leaked, otherwise treat the key as exposed"
            " and rotate it (`byollm kek rotate`)"
        )


def read_key_file(path: Path) -> list[Kek]:
    """The keys in a key file (one per line), after checking that only its owner can access it."""
    _check_private(path)
    lines = [line.strip() for line in path.read_text(encoding="ascii").splitlines()]
    keys = [Kek.from_text(line, source=f"the key file {path}") for line in lines if line]
    if not keys:
        raise KekError(f"the key file {path} is empty")
    return keys


def write_key_file(path: Path, keys: Iterable[Kek], *, replace: bool = True) -> bool:
    """Write ``keys`` to ``path`` atomically with mode 0600.

    With ``replace=False`` an existing file wins (two processes creating the key at once end up with the
    same key) and the function returns False. The file is written under a temporary name and linked or
    renamed into place, so a reader never sees a partial key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("".join(f"{k.to_text()}\n" for k in keys))
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def load_keyring(settings: Settings, *, create: bool = True) -> KeyRing:
    """The key ring for ``settings``: ``BYOLLM_KEK`` if set, else the data directory's ``kek`` file.

    In file mode a missing file is created (``create=True``) with a fresh key. Previous keys come from
    ``BYOLLM_KEK_PREVIOUS`` and, in file mode, from ``kek.previous``.
    """
    previous = [Kek.from_text(text, source="BYOLLM_KEK_PREVIOUS") for text in settings.kek_previous]
    if settings.kek:
        return KeyRing(Kek.from_text(settings.kek), tuple(previous), source="BYOLLM_KEK")
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        if not create:
            raise KekError(f"no key-encryption key: BYOLLM_KEK is not set and {path} does not exist")
        write_key_file(path, [Kek.from_text(generate_kek_text())], replace=False)
    current = read_key_file(path)[0]
    previous_path = settings.data_dir / PREVIOUS_KEY_FILE
    if previous_path.exists():
        previous.extend(read_key_file(previous_path))
    unique = tuple({k.kek_id: k for k in previous if k.kek_id != current.kek_id}.values())
    return KeyRing(current, unique, source=f"the key file {path}")
