"""The fault matrix: every error class x {plain, stream} x {interactive, cloud run}, injected through the
simulator or the request, must fail over (served by the fallback; with nothing left, ``no_fallback_available``
naming the class) or fail as its class with its remediation. ``scripts/fault_matrix.py`` prints the table.

The cells are generated from ``ErrorClass`` (``support.fault_matrix.matrix_cells``): a class added without a
spec yields failing cells here. The n/a cells are listed below by hand, so a cell silently becoming n/a (or
an n/a cell becoming runnable without this list being updated) fails too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from byollm.errors import ErrorClass
from support.fault_matrix import SPECS, Cell, Context, Harness, Mode, matrix_cells, matrix_stack, run_cell

CELLS = matrix_cells()
_RUN = Context.CLOUD_RUN.value
_INTERACTIVE = Context.INTERACTIVE.value

# Documented n/a cells (code, context, mode); every cloud-run stream cell is n/a because a run's model calls
# are never streamed.
DOCUMENTED_NA: frozenset[tuple[str, str, str]] = frozenset(
    {(member.code, _RUN, Mode.STREAM.value) for member in ErrorClass}
    | {(code, _INTERACTIVE, mode.value) for mode in Mode for code in (
        "role_assumption_failed", "oidc_provider_missing", "issuer_unreachable",  # web identity: runs only
        "endpoint_not_allowed",  # refused when stored; at request time only DNS rebinding or operator config
        "forbidden",  # no role-gated action on the inference endpoints
        "conflict",  # no inference endpoint creates a resource
        "internal_error",  # only a byollm defect produces it
        "tool_not_enabled", "sandbox_unavailable",  # byollm executes tools only in cloud runs
    )}
    | {(code, _RUN, Mode.PLAIN.value) for code in (
        "local_credentials_expired", "local_credentials_missing", "partial_credentials",  # no delegated creds
        "long_term_credentials_refused",
        "aws_account_not_allowed",  # the allow-list applies to delegated credentials
        "endpoint_not_allowed",
        "unsupported_by_route",  # a run's requests are text and byollm's own tools
        "payload_too_large",  # a run's calls do not pass byollm's door
        "unauthenticated", "forbidden", "too_many_attempts",  # a run's calls carry no token
        "not_found", "conflict",  # admin-API classes
        "model_not_found",  # the runs API refuses an unknown model before the run is queued
        "internal_error",
        "sandbox_unavailable",  # needs a worker without bubblewrap: tests/runs/test_sandbox_attacks.py
    )}
)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with matrix_stack(Path(tmp_path_factory.mktemp("fault-matrix"))) as h:
        yield h


@pytest.mark.parametrize("cell", [c for c in CELLS if c.check is not None], ids=lambda c: c.id)
def test_cell(harness: Harness, cell: Cell) -> None:
    result = run_cell(harness, cell)
    assert result.passed, f"{cell.id}: {result.problem}"


def test_the_matrix_covers_every_class_in_every_context_and_mode() -> None:
    codes = {member.code for member in ErrorClass}
    assert set(SPECS) == codes, f"classes without a spec: {codes - set(SPECS)}; stale specs: {set(SPECS) - codes}"
    expected = {(code, context.value, mode.value) for code in codes for context in Context for mode in Mode}
    assert {cell.key for cell in CELLS} == expected and len(CELLS) == len(expected)


def test_the_na_cells_are_exactly_the_documented_ones() -> None:
    na = {cell.key for cell in CELLS if cell.check is None}
    assert na == DOCUMENTED_NA, f"undocumented n/a: {na - DOCUMENTED_NA}; documented but runnable: {DOCUMENTED_NA - na}"
    assert all(cell.na_reason for cell in CELLS if cell.check is None)
