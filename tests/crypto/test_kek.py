"""The key-encryption key: sealing, key ids, the 0600 key file, and errors that never show a key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from byollm.crypto.kek import (
    KEY_FILE,
    PREVIOUS_KEY_FILE,
    Kek,
    KekError,
    SecretDecryptionError,
    generate_kek_text,
    load_keyring,
    write_key_file,
)
from byollm.settings import Settings

KEY_A = generate_kek_text()
KEY_B = generate_kek_text()


def test_seal_and_open_round_trip_with_name_binding() -> None:
    kek = Kek.from_text(KEY_A)
    sealed = kek.encrypt(b"sk-ant-canary", name="provider_key:anthropic")
    assert b"sk-ant-canary" not in sealed
    assert len(sealed) == 1 + 12 + len(b"sk-ant-canary") + 16
    assert kek.decrypt(sealed, name="provider_key:anthropic") == b"sk-ant-canary"
    assert kek.encrypt(b"x", name="n") != kek.encrypt(b"x", name="n")  # fresh nonce every time
    with pytest.raises(SecretDecryptionError, match="sealed for another name"):
        kek.decrypt(sealed, name="provider_key:openai")
    with pytest.raises(SecretDecryptionError):
        Kek.from_text(KEY_B).decrypt(sealed, name="provider_key:anthropic")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretDecryptionError):
        kek.decrypt(tampered, name="provider_key:anthropic")


def test_key_id_and_repr_never_show_the_key() -> None:
    kek = Kek.from_text(KEY_A)
    assert len(kek.kek_id) == 16
    assert kek.kek_id != Kek.from_text(KEY_B).kek_id
    assert KEY_A not in repr(kek)
    assert kek.key.hex() not in repr(kek)
    assert Kek.from_text(KEY_A.rstrip("=")) == kek  # padding optional


@pytest.mark.parametrize("text", ["not base64 !!", "c2hvcnQ=", ""])
def test_malformed_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(KekError) as info:
        Kek.from_text(text)
    assert "BYOLLM_KEK" in info.value.detail
    if text:
        assert text not in info.value.detail


def test_environment_key_and_previous_keys(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEY_B, kek_previous=(KEY_A,))
    ring = load_keyring(settings)
    assert ring.current == Kek.from_text(KEY_B)
    assert ring.for_id(Kek.from_text(KEY_A).kek_id) == Kek.from_text(KEY_A)
    assert ring.for_id("0" * 16) is None
    assert not (tmp_path / KEY_FILE).exists()  # environment mode never writes a key file


def test_embedded_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.for_data_dir(data_dir)
    first = load_keyring(settings)
    path = data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings).current == first.current
    assert path.read_text().strip() == first.current.to_text()
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_load_without_create_reports_the_missing_key(tmp_path: Path) -> None:
    with pytest.raises(KekError, match="BYOLLM_KEK is not set"):
        load_keyring(Settings.for_data_dir(tmp_path), create=False)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    settings = Settings.for_data_dir(tmp_path)
    key = load_keyring(settings).current
    path = tmp_path / KEY_FILE
    os.chmod(path, mode)
    with pytest.raises(KekError) as info:
        load_keyring(settings)
    assert f"chmod 600 {path}" in info.value.detail
    assert key.to_text() not in info.value.detail


def test_previous_key_file_joins_the_ring(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path)
    old = Kek.from_text(KEY_A)
    write_key_file(tmp_path / PREVIOUS_KEY_FILE, [old])
    ring = load_keyring(settings)
    assert ring.for_id(old.kek_id) == old
    assert ring.current != old


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    assert write_key_file(path, [Kek.from_text(KEY_A)], replace=False)
    assert not write_key_file(path, [Kek.from_text(KEY_B)], replace=False)
    assert path.read_text().strip() == KEY_A
