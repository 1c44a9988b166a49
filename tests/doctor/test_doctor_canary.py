"""Canary scan of the doctor's paths: the API (the panel's Validate) and the CLI (the admin's own AWS
credentials). The doctor mints web-identity tokens and holds STS credentials for its test prompts, and the CLI
holds the admin's session; none of those values may reach a report, a log line, the output or a table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from doctor.doctor_support import admin_aws_env, api_doctor, cli_doctor, trust_for
from support.canary import LogRecords, dump_database
from support.oidc_stack import make_role, minted_tokens
from support.stack import KEK, Stack


def test_no_token_or_credential_reaches_a_report_log_output_or_table(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    records = LogRecords()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
        good = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
        team.bedrock(role_arn=good)
        passing = api_doctor(stack, team.uid)  # test prompts succeed through the role
        bad = make_role(stack, subjects=["scoped_principal:SomeOtherTeamUid0000000/*"])
        team.bedrock(role_arn=bad)
        failing = api_doctor(stack, team.uid, trust_policy=trust_for(stack, bad, ["scoped_principal:x/*"]))
        admin = admin_aws_env(stack, monkeypatch, tmp_path)
        code, cli_output = cli_doctor("--team", team.uid, "--json")
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    captured = capfd.readouterr()
    assert code in (0, 1), cli_output
    assert any(c["status"] == "pass" for c in passing["checks"] if c["id"].endswith("prompt.claude-opus-4-7"))
    assert any(c["status"] == "fail" for c in failing["checks"])

    issued = list(stack.sim.state._session_keys.values())  # every temporary credential the simulated STS issued
    tokens = minted_tokens(stack)
    assert tokens and issued
    secrets = {
        "operator_token": stack.operator, "member_token": team.token, "kek": KEK,
        "admin_aws_secret": admin["SecretAccessKey"], "admin_aws_session_token": admin["SessionToken"],
        **{f"web_identity_token_{i}": t for i, t in enumerate(tokens)},
        **{f"sts_secret_{i}": s.secret_access_key for i, s in enumerate(issued)},
        **{f"sts_session_token_{i}": s.session_token or "" for i, s in enumerate(issued)},
    }
    places = {
        "reports": json.dumps([passing, failing]), "cli": cli_output, "logs": "\n".join(records.lines),
        "stdout": captured.out, "stderr": captured.err, "database": dump_database(stack),
    }
    hits = [(name, where) for name, value in secrets.items() if value
            for where, blob in places.items() if value in blob]
    assert hits == []
