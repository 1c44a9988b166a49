"""Print the fault matrix: every error class x {plain, stream} x {interactive, cloud run}, each cell injected
through the simulator (or the request) against a real byollm server, with its outcome and PASS/FAIL.

Usage: ``.venv/bin/python scripts/fault_matrix.py [substring ...]`` (substrings select cells by id, e.g.
``quota`` or ``cloud_run``). Starts its own simulator and byollm server in a temporary directory; exits 1
when any cell fails. The same cells run in ``tests/reliability/test_fault_matrix.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.fault_matrix import format_table, matrix_cells, matrix_stack, run_matrix


def main(argv: list[str]) -> int:
    cells = [cell for cell in matrix_cells() if not argv or any(part in cell.id for part in argv)]
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="byollm-fault-matrix-") as data_dir, \
            matrix_stack(Path(data_dir)) as harness:
        results = run_matrix(harness, cells)
    print(format_table(results))
    print(f"({time.monotonic() - began:.1f} s)")
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
