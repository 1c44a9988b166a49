"""Whether this host can run the tool sandbox, for tests that need it.

Why not a bare ``skipif``: a skipped sandbox test is a green run that proved nothing, and CI runs as root on
a fresh machine where bubblewrap is installed by ``.ci/run``. ``BYOLLM_REQUIRE_SANDBOX=1`` (``.ci/run`` sets
it) turns the skip into a failure that says why; elsewhere the tests skip, saying why.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["needs_bwrap", "needs_bwrap_and"]

REQUIRE = "BYOLLM_REQUIRE_SANDBOX"


def _missing(*programs: str) -> list[str]:
    missing = [name for name in programs if shutil.which(name) is None]
    if missing and os.environ.get(REQUIRE) == "1":
        raise pytest.UsageError(f"{REQUIRE}=1 but {', '.join(missing)} is not installed: the sandbox tests cannot"
                                " run (install bubblewrap, as .ci/run does)")
    return missing


def needs_bwrap_and(*programs: str) -> pytest.MarkDecorator:
    """Skip (or, under ``BYOLLM_REQUIRE_SANDBOX=1``, fail collection) without bwrap and ``programs``."""
    missing = _missing("bwrap", *programs)
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


needs_bwrap = needs_bwrap_and
