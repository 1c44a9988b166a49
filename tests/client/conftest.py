"""One simulator + byollm stack for every client test; each test makes its own team and client environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client_env import ClientEnv, make_client_env
from support.stack import Stack, Team, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("client-stack"))) as s:
        yield s


@pytest.fixture
def team(stack: Stack) -> Team:
    stack.clear_faults()
    return stack.new_team()


@pytest.fixture
def client_env(tmp_path: Path, stack: Stack, team: Team, monkeypatch: pytest.MonkeyPatch) -> ClientEnv:
    return make_client_env(tmp_path, stack, team, monkeypatch)
