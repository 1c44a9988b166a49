"""Helpers for doctor tests: run the doctor through the API (the panel's path) and the CLI (the admin's path,
reading the simulator's IAM and Bedrock with the admin's own AWS credentials)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from typer.testing import CliRunner

from byollm.cli.main import app
from support.stack import ACCOUNT, Stack

_AWS_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION", "AWS_CREDENTIAL_EXPIRATION",
                "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL_STS", "BYOLLM_TEAM")


def api_doctor(stack: Stack, team_uid: str, **body: Any) -> dict[str, Any]:
    """``POST /api/v1/teams/{team}/doctor`` as the operator (an admin of every team it made)."""
    r = stack.admin.post(f"/teams/{team_uid}/doctor", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


def check(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["id"] == check_id]
    assert found, f"no check {check_id}: {[c['id'] for c in report['checks']]}"
    return dict(found[0])


def admin_aws_env(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp: Any) -> dict[str, str]:
    """The admin's own AWS credentials (temporary, from the simulator) and endpoint overrides, in the env."""
    for name in _AWS_CLEARED:
        monkeypatch.delenv(name, raising=False)
    creds = stack.session_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.sim.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    monkeypatch.setenv("BYOLLM_URL", stack.url)
    monkeypatch.setenv("BYOLLM_TOKEN", stack.operator)
    return creds


def cli_doctor(*args: str) -> tuple[int, str]:
    """``byollm doctor ...`` in-process; the exit code and the output with whitespace collapsed."""
    result = CliRunner().invoke(app, ["doctor", *args])
    return result.exit_code, result.output


def put_role(stack: Stack, *, policy: dict[str, Any], trust: dict[str, Any] | None = None,
             account: str = ACCOUNT) -> str:
    """A fresh role in the simulator with one permissions policy and (optionally) a trust policy; its ARN."""
    name = f"doctor-{secrets.token_hex(4)}"
    body: dict[str, Any] = {"policies": {"invoke": policy}, "max_session_duration": 3600}
    if trust is not None:
        body["trust_policy"] = trust
    r = stack.sim_http.put(f"/_sim/accounts/{account}/roles/{name}", json=body)
    assert r.status_code == 200, r.text
    return f"arn:aws:iam::{account}:role/{name}"


def trust_for(stack: Stack, role_arn: str, subjects: list[str], *, audience: str = "sts.amazonaws.com",
              account: str = ACCOUNT) -> dict[str, Any]:
    """Register byollm's issuer in ``account`` and install a trust policy for ``subjects`` on the role."""
    r = stack.sim_http.post(f"/_sim/accounts/{account}/web-identity-trust", json={
        "issuer": stack.url, "role": role_arn.rsplit("/", 1)[-1], "subjects": subjects, "audience": audience})
    assert r.status_code == 200, r.text
    return dict(r.json()["trust_policy"])


def issuer_host(stack: Stack) -> str:
    return stack.url.split("://", 1)[-1].rstrip("/")
