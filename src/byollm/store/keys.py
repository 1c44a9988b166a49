"""Key-encryption key lifecycle against the store: verify at start, rotate, reset after a loss.

Rotation, two modes:

- ``BYOLLM_KEK`` set (replicas): the operator sets ``BYOLLM_KEK`` to a new key and ``BYOLLM_KEK_PREVIOUS``
  to the old one everywhere, runs ``byollm kek rotate`` once, then drops ``BYOLLM_KEK_PREVIOUS``.
- the embedded ``kek`` file: ``rotate_kek`` generates the new key itself. It first writes the old key to
  ``kek.previous`` (0600), then the new one to ``kek``, re-seals every row in one transaction, and only then
  deletes ``kek.previous``. Interrupted anywhere, running it again finishes the job with no secret lost.
  Stop ``byollm serve`` first: a running server still holds the old key in memory and would seal new
  secrets with it after the old key file is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from byollm.crypto.kek import (
    KEY_FILE,
    PREVIOUS_KEY_FILE,
    Kek,
    KeyRing,
    generate_kek_text,
    load_keyring,
    read_key_file,
    write_key_file,
)
from byollm.settings import Settings
from byollm.store.engine import Store
from byollm.store.migrate import check_schema
from byollm.store.secrets import RotationResult, delete_unreadable_secrets, rotate_secrets, verify_kek

__all__ = ["KekRotationReport", "open_keyring", "reset_unreadable_secrets", "rotate_kek"]


async def open_keyring(store: Store, settings: Settings) -> KeyRing:
    """Load the key ring (creating the embedded key file on first use) and verify it opens every stored
    secret; the server calls this at start."""
    keyring = load_keyring(settings)
    await verify_kek(store, keyring)
    return keyring


@dataclass(frozen=True, slots=True)
class KekRotationReport:
    result: RotationResult
    generated: bool  # True when a new key file was written (embedded mode)
    previous_ids: tuple[str, ...]


def _start_file_rotation(settings: Settings) -> bool:
    """Embedded mode: make sure ``kek`` holds a new key and ``kek.previous`` the old one(s).

    Returns True if a new key was generated, False when resuming an interrupted rotation.
    """
    key_path = settings.data_dir / KEY_FILE
    previous_path = settings.data_dir / PREVIOUS_KEY_FILE
    current = load_keyring(settings).current
    previous: list[Kek] = read_key_file(previous_path) if previous_path.exists() else []
    if any(k.kek_id != current.kek_id for k in previous):
        return False  # the new key is already in place: resume re-sealing
    keep = {k.kek_id: k for k in (current, *previous)}
    write_key_file(previous_path, keep.values())
    write_key_file(key_path, [Kek.from_text(generate_kek_text())])
    return True


async def rotate_kek(settings: Settings) -> KekRotationReport:
    """Re-seal every stored secret under the current key (generating it first in embedded mode)."""
    store = Store.from_settings(settings)
    try:
        await check_schema(store)
        generated = False if settings.kek else _start_file_rotation(settings)
        keyring = load_keyring(settings)
        async with store.session() as session:
            result = await rotate_secrets(session, keyring=keyring)
        if not settings.kek:
            (settings.data_dir / PREVIOUS_KEY_FILE).unlink(missing_ok=True)
        return KekRotationReport(
            result=result, generated=generated, previous_ids=tuple(k.kek_id for k in keyring.previous)
        )
    finally:
        await store.dispose()


async def reset_unreadable_secrets(settings: Settings) -> list[str]:
    """Delete the secrets no known key can open (the key is lost for good); return their names."""
    store = Store.from_settings(settings)
    try:
        await check_schema(store)
        keyring = load_keyring(settings)
        async with store.session() as session:
            return await delete_unreadable_secrets(session, keyring=keyring)
    finally:
        await store.dispose()
