"""One simulator + byollm issuer stack per test module; each test makes its own team and roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.oidc_stack import running_oidc_stack
from support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("doctor"))) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean_faults(stack: Stack) -> Iterator[None]:
    stack.clear_faults()
    yield
    stack.clear_faults()
