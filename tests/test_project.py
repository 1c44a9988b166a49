"""Project-level promises: the README's two commands, CI running the README's test command, packaging."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", quick_start, flags=re.S)]


def test_readme_quick_start_has_exactly_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands), "each quick-start command must be one line"
    assert commands[0].endswith("byollm demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci.splitlines()


@pytest.mark.slow
def test_wheel_ships_migrations_catalog_and_world(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("byollm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "byollm/catalog/models.yaml" in names
    assert "byollm/store/migrations/env.py" in names
    assert any(n.startswith("byollm/store/migrations/versions/0001") for n in names)
    assert "byollm/sim/default_world.yaml" in names
    assert "byollm/py.typed" in names
