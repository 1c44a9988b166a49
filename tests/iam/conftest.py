"""One simulator + byollm issuer stack per module: the generated IAM documents are installed in the
simulator's IAM and must then let a run's exchange and Bedrock calls through (and nothing more)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.oidc_stack import running_oidc_stack
from support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("iam"))) as s:
        yield s
