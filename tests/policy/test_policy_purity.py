"""The policy layer stays pure: importing it pulls in no framework, database, HTTP or AWS library."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "botocore",
    "boto3",
    "pydantic",
    "alembic",
    "typer",
)


def test_policy_imports_no_framework() -> None:
    code = (
        "import sys, byollm.policy, byollm.policy.planner, byollm.policy.validate, byollm.policy.types;"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}));"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
