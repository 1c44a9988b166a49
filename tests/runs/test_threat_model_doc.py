"""Issue 13: ``docs/architecture.md`` keeps a short threat model for runs, saying what a hostile prompt can
reach and what it cannot, and pointing at the tests that try the "cannot"s."""

from __future__ import annotations

import re
from pathlib import Path

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _threat_model() -> str:
    text = ARCHITECTURE.read_text()
    found = re.search(r"\*\*Threat model for runs\.\*\*(.*?)(?:\n\n|\Z)", text, re.S)
    assert found, "docs/architecture.md has no paragraph starting **Threat model for runs.**"
    return " ".join(found.group(1).split())


def test_the_threat_model_says_what_a_run_can_and_cannot_reach() -> None:
    model = _threat_model()
    assert "can:" in model and "It cannot:" in model and "What remains:" in model
    for reachable in ("working directory", "egress"):
        assert reachable in model
    for unreachable in ("KEK", "data directory", "SQLite", "metadata service", "byollm's own API",
                        "other runs' working directories", "environment of byollm"):
        assert unreachable in model, unreachable
    named = re.findall(r"`(tests/[\w/]+\.py)`", model)
    assert named and all((ARCHITECTURE.parents[1] / path).exists() for path in named)
