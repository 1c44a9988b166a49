"""`byollm serve` refuses to start, with one clear sentence, when stored secrets cannot be decrypted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from byollm.cli.main import app
from byollm.crypto.kek import generate_kek_text
from byollm.settings import Settings
from byollm.store import Store
from byollm.store.keys import open_keyring
from byollm.store.migrate import upgrade
from byollm.store.secrets import put_secret


def test_serve_reports_a_lost_key_encryption_key_without_a_traceback(tmp_path: Path) -> None:
    original, other = generate_kek_text(), generate_kek_text()
    settings = Settings.for_data_dir(tmp_path, kek=original)

    async def seal_a_secret() -> None:
        await upgrade(settings)
        async with Store.from_settings(settings) as store:
            keyring = await open_keyring(store, settings)
            async with store.session() as session:
                await put_secret(session, keyring=keyring, name="provider_key:anthropic", value="sk-x")

    asyncio.run(seal_a_secret())
    result = CliRunner().invoke(app, ["serve", "--port", "9"], env={"BYOLLM_DATA_DIR": str(tmp_path),
                                                                    "BYOLLM_KEK": other})
    assert result.exit_code == 1
    assert "byollm cannot start" in result.output
    assert "BYOLLM_KEK" in result.output and "kek reset-secrets" in result.output
    assert "Traceback" not in result.output
    assert original not in result.output and other not in result.output
