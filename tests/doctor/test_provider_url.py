"""An OIDC provider registered with one slash more than byollm's issuer URL: IAM keeps the slash and matches
``iss`` exactly, so runs fail; the doctor says exactly that (CLI path), and the test prompt fails the same way
at the simulator's STS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.doctor_support import admin_aws_env, check, cli_doctor, issuer_host
from support.oidc_stack import make_role
from support.stack import ACCOUNT, Stack


def test_a_provider_registered_with_a_trailing_slash_is_named(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    slashed = f"{stack.url}/"
    stack.sim_http.delete(f"/_sim/accounts/{ACCOUNT}/oidc-providers", params={"url": stack.url})
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"], issuer=slashed)
    team.bedrock(role_arn=role)
    try:
        admin_aws_env(stack, monkeypatch, tmp_path)
        report = json.loads(cli_doctor("--team", team.uid, "--json")[1])
        provider = check(report, "team.oidc_provider")
        assert provider["status"] == "fail" and provider["error_class"] == "oidc_provider_missing"
        host = issuer_host(stack)
        assert f"oidc-provider/{host}/ was registered with a trailing slash" in provider["detail"]
        assert f"create arn:aws:iam::{ACCOUNT}:oidc-provider/{host} (the URL without the slash)" in provider["detail"]
        prompt = check(report, "team.prompt.claude-opus-4-7")
        assert prompt["status"] == "fail" and prompt["error_class"] == "oidc_provider_missing"
    finally:
        stack.sim_http.delete(f"/_sim/accounts/{ACCOUNT}/oidc-providers", params={"url": slashed})
        make_role(stack, subjects=["scoped_principal:restore/*"])  # registers byollm's provider again
