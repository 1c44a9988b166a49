"""`byollm demo --check` must pass on a fresh install: every step behaves as the walkthrough says."""

from __future__ import annotations

import io

from rich.console import Console

from byollm.demo import run_demo


def test_demo_check_passes_every_step() -> None:
    buffer = io.StringIO()
    code = run_demo(check=True, console=Console(file=buffer, width=160, highlight=False))
    output = buffer.getvalue()
    assert code == 0, output
    assert output.count(" ok\n") >= 8, output
    assert "UNEXPECTED" not in output
    assert "[bedrock:anthropic.claude-opus-4-7-v1:0]" in output  # served by the simulator's Bedrock
    assert "local_credentials_expired" in output and "no_fallback_available" in output
    assert "assumed-role/byollm-team/byollm-run-" in output and "role_assumption_failed" in output
