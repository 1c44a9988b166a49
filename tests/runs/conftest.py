"""One simulator + byollm stack (embedded worker, short leases) per test module; each test makes its team."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.runs_stack import running_runs_stack
from support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_runs_stack(Path(tmp_path_factory.mktemp("runs"))) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean_sim(stack: Stack) -> Iterator[None]:
    stack.clear_faults()
    yield
    stack.clear_faults()
