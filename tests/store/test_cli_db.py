"""`byollm db upgrade|current` and `byollm kek rotate|reset-secrets` on the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from byollm.cli import db_cmd
from byollm.crypto.kek import KEY_FILE
from byollm.store.migrate import head_revision


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    for name in ("BYOLLM_DATABASE_URL", "BYOLLM_KEK", "BYOLLM_KEK_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BYOLLM_DATA_DIR", str(tmp_path))
    root = typer.Typer()
    db_cmd.register(root)
    return root


def test_db_current_upgrade_and_kek_rotate(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 1
    assert "run `byollm db upgrade`" in before.output

    rotate_early = runner.invoke(app, ["kek", "rotate"])
    assert rotate_early.exit_code == 1
    assert "byollm db upgrade" in rotate_early.output

    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from empty to {head_revision()}" in upgraded.output
    assert "nothing to do" in runner.invoke(app, ["db", "upgrade"]).output
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0
    assert "up to date" in current.output

    rotated = runner.invoke(app, ["kek", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "generated a new key-encryption key" in rotated.output
    key_text = (tmp_path / KEY_FILE).read_text().strip()
    assert key_text not in rotated.output

    assert runner.invoke(app, ["kek", "reset-secrets"]).exit_code == 2
    reset = runner.invoke(app, ["kek", "reset-secrets", "--yes"])
    assert reset.exit_code == 0
    assert "deleted 0 unreadable secret(s)" in reset.output
