"""One simulator + byollm stack per test module; each test makes its own team."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("gateway"))) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean_faults(stack: Stack) -> Iterator[None]:
    stack.clear_faults()
    yield
    stack.clear_faults()
