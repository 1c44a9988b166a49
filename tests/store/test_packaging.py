"""The migrations ship in the wheel: every file Alembic needs matches pyproject's package-data globs."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import byollm

ROOT = Path(__file__).resolve().parents[2]


def test_every_migration_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["byollm"]
    package = Path(byollm.__file__).parent
    files = [
        p.relative_to(package).as_posix()
        for p in (package / "store" / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert "store/migrations/env.py" in files
    assert "store/migrations/script.py.mako" in files
    assert "store/migrations/versions/0001_initial.py" in files
    unmatched = [f for f in files if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)]
    assert unmatched == []
