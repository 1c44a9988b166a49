"""Secrets at rest against a real database: sealing, the lost-key report, rotation in both modes."""

from __future__ import annotations

import dataclasses
import stat

import pytest
from sqlalchemy import select

from byollm.crypto.kek import (
    KEY_FILE,
    PREVIOUS_KEY_FILE,
    Kek,
    KekError,
    KeyRing,
    SecretDecryptionError,
    load_keyring,
)
from byollm.settings import Settings
from byollm.store import NotFoundError, Store
from byollm.store import tables as t
from byollm.store.keys import open_keyring, reset_unreadable_secrets, rotate_kek
from byollm.store.secrets import (
    delete_secret,
    get_secret,
    get_secret_text,
    list_secret_names,
    list_secrets,
    put_secret,
    verify_kek,
)

CANARY = "sk-ant-CANARY-0123456789"
KEY_A = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
KEY_B = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="


async def _put_two(store: Store, ring: KeyRing) -> None:
    async with store.session() as s:
        await put_secret(s, keyring=ring, name="provider_key:anthropic", value=CANARY)
        await put_secret(s, keyring=ring, name="provider_key:openai", value=b"sk-openai-canary")


async def test_put_get_list_delete(store: Store) -> None:
    ring = KeyRing(Kek.from_text(KEY_A))
    await _put_two(store, ring)
    async with store.session() as s:
        assert await get_secret_text(s, keyring=ring, name="provider_key:anthropic") == CANARY
        assert await list_secret_names(s) == ["provider_key:anthropic", "provider_key:openai"]
        info = await put_secret(s, keyring=ring, name="provider_key:openai", value="replaced")
        assert info.kek_id == ring.current.kek_id
        assert info.updated_at >= info.created_at
        assert await get_secret(s, keyring=ring, name="provider_key:openai") == b"replaced"
        assert [i.kek_id for i in await list_secrets(s)] == [ring.current.kek_id] * 2
        await delete_secret(s, name="provider_key:openai")
        assert await list_secret_names(s) == ["provider_key:anthropic"]
        rows = list(await s.scalars(select(t.Secret.ciphertext)))
    assert all(CANARY.encode() not in blob for blob in rows)
    with pytest.raises(NotFoundError):
        async with store.session() as s:
            await get_secret(s, keyring=ring, name="provider_key:openai")


async def test_a_ciphertext_moved_to_another_name_does_not_open(store: Store) -> None:
    ring = KeyRing(Kek.from_text(KEY_A))
    await _put_two(store, ring)
    async with store.session() as s:
        a = await s.get(t.Secret, "provider_key:anthropic")
        b = await s.get(t.Secret, "provider_key:openai")
        assert a is not None
        assert b is not None
        b.ciphertext = a.ciphertext
    with pytest.raises(SecretDecryptionError):
        async with store.session() as s:
            await get_secret(s, keyring=ring, name="provider_key:openai")


async def test_wrong_key_is_reported_clearly_and_without_key_material(store: Store) -> None:
    await _put_two(store, KeyRing(Kek.from_text(KEY_A)))
    wrong = KeyRing(Kek.from_text(KEY_B))
    with pytest.raises(KekError) as info:
        await verify_kek(store, wrong)
    message = info.value.detail
    assert message.startswith("2 stored secret(s) were sealed with a key-encryption key byollm does not have")
    assert "BYOLLM_KEK" in message
    assert "`kek` file" in message
    assert "byollm kek reset-secrets" in message
    for key in (KEY_A, KEY_B):
        assert key not in message
        assert Kek.from_text(key).key.hex() not in message
    with pytest.raises(KekError):
        async with store.session() as s:
            await get_secret(s, keyring=wrong, name="provider_key:anthropic")
    await verify_kek(store, KeyRing(Kek.from_text(KEY_B), (Kek.from_text(KEY_A),)))  # previous key: fine


async def test_rotation_with_environment_keys(store: Store, settings: Settings) -> None:
    await _put_two(store, KeyRing(Kek.from_text(KEY_A)))
    rotating = dataclasses.replace(settings, kek=KEY_B, kek_previous=(KEY_A,))
    report = await rotate_kek(rotating)
    assert (report.result.resealed, report.result.already_current) == (2, 0)
    assert not report.generated
    only_b = dataclasses.replace(settings, kek=KEY_B, kek_previous=())
    ring = await open_keyring(store, only_b)
    async with store.session(readonly=True) as s:
        assert await get_secret_text(s, keyring=ring, name="provider_key:anthropic") == CANARY
    again = await rotate_kek(rotating)  # idempotent
    assert (again.result.resealed, again.result.already_current) == (0, 2)


async def test_rotation_refuses_when_a_key_is_missing_and_changes_nothing(store: Store, settings: Settings) -> None:
    await _put_two(store, KeyRing(Kek.from_text(KEY_A)))
    with pytest.raises(KekError, match="2 stored secret"):
        await rotate_kek(dataclasses.replace(settings, kek=KEY_B, kek_previous=()))
    async with store.session(readonly=True) as s:
        assert {i.kek_id for i in await list_secrets(s)} == {Kek.from_text(KEY_A).kek_id}


async def test_rotation_with_the_embedded_key_file(store: Store, settings: Settings) -> None:
    embedded = dataclasses.replace(settings, kek=None)
    old = await open_keyring(store, embedded)
    await _put_two(store, old)
    report = await rotate_kek(embedded)
    assert report.generated
    assert report.result.resealed == 2
    assert report.previous_ids == (old.current.kek_id,)
    assert not (settings.data_dir / PREVIOUS_KEY_FILE).exists()
    assert stat.S_IMODE((settings.data_dir / KEY_FILE).stat().st_mode) == 0o600
    new = await open_keyring(store, embedded)
    assert new.current != old.current
    assert new.previous == ()
    async with store.session(readonly=True) as s:
        assert await get_secret_text(s, keyring=new, name="provider_key:anthropic") == CANARY
    with pytest.raises(KekError):
        await verify_kek(store, old)


async def test_an_interrupted_embedded_rotation_resumes(store: Store, settings: Settings) -> None:
    embedded = dataclasses.replace(settings, kek=None)
    old = await open_keyring(store, embedded)
    await _put_two(store, old)
    # Simulate a crash after the key files were switched but before the rows were re-sealed.
    from byollm.crypto.kek import write_key_file

    write_key_file(settings.data_dir / PREVIOUS_KEY_FILE, [old.current])
    write_key_file(settings.data_dir / KEY_FILE, [Kek.from_text(KEY_B)])
    ring = await open_keyring(store, embedded)  # the previous file keeps old rows readable meanwhile
    assert ring.for_id(old.current.kek_id) is not None
    report = await rotate_kek(embedded)
    assert not report.generated
    assert report.result.resealed == 2
    assert load_keyring(embedded).current == Kek.from_text(KEY_B)
    assert not (settings.data_dir / PREVIOUS_KEY_FILE).exists()


async def test_reset_deletes_only_unreadable_secrets(store: Store, settings: Settings) -> None:
    await _put_two(store, KeyRing(Kek.from_text(KEY_A)))
    async with store.session() as s:
        await put_secret(s, keyring=KeyRing(Kek.from_text(KEY_B)), name="kept", value="v")
    names = await reset_unreadable_secrets(dataclasses.replace(settings, kek=KEY_B))
    assert names == ["provider_key:anthropic", "provider_key:openai"]
    async with store.session(readonly=True) as s:
        assert await list_secret_names(s) == ["kept"]
