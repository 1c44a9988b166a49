"""``byollm doctor --local`` through the real CLI (in-process), against the simulator's AWS config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from byollm.cli.main import app
from support.client_env import ClientEnv, make_client_env
from support.stack import Stack, Team


def _doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", "--local", *args])
    return result.exit_code, " ".join(result.output.split())


def test_all_checks_pass_and_each_bedrock_model_answers(client_env: ClientEnv) -> None:
    code, text = _doctor()
    assert code == 0, text
    assert "✗" not in text
    assert "custom-process via profile sim-process; temporary (ASIA…)" in text
    assert "caller identity: arn:aws:iam::111122223333:user/byollm-dev; the team accepts any account" in text
    for model in ("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"):
        assert f"Bedrock: {model}: answered through bedrock:" in text
    assert "gpt-5" not in text  # direct-only models are not Bedrock checks


def test_region_difference_and_a_refused_account_are_reported(tmp_path: Path, stack: Stack,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    team = stack.new_team(region="us-west-2", allowed_aws_accounts=["999988887777"])
    make_client_env(tmp_path, stack, team, monkeypatch)
    code, text = _doctor()
    assert code == 1
    assert "your profile's region is us-east-1 but the team routes Bedrock through us-west-2" in text
    assert "error class: region_model_mismatch" in text
    assert "account 111122223333 is not among the team's accounts (999988887777)" in text
    assert "error class: aws_account_not_allowed" in text


def test_long_term_keys_fail_with_their_class(tmp_path: Path, stack: Stack, team: Team,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-long-term")
    code, text = _doctor()
    assert code == 1
    assert "long-term keys (AKIA…, no session token)" in text
    assert "error class: long_term_credentials_refused" in text
    assert "fix: Use short-lived session credentials" in text


def test_a_bedrock_route_that_fails_over_is_a_failure_with_its_class(client_env: ClientEnv, stack: Stack) -> None:
    stack.fault(service="bedrock", model="*sonnet*", error="AccessDeniedException", count=1)
    try:
        code, text = _doctor()
    finally:
        stack.clear_faults()
    assert code == 1
    assert "Bedrock: claude-sonnet-4-6: the Bedrock route failed; served by anthropic:" in text
    assert "error class: insufficient_permissions" in text
    assert "Bedrock: claude-opus-4-7: answered through bedrock:" in text


def test_an_ended_login_session_names_the_command(tmp_path: Path, stack: Stack, team: Team,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-login", login_credential_duration_s=120)
    stack.sim_http.post("/signin/_sim/end-sessions", json={"user": "byollm-dev"})
    code, text = _doctor()
    assert code == 1
    assert "error class: local_credentials_expired" in text
    assert "fix: Run `aws login --profile sim-login` to sign in to AWS again." in text


def test_a_wrong_token_is_reported_by_the_gateway_check(client_env: ClientEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_TOKEN", "byo_" + "x" * 43)
    code, text = _doctor()
    assert code == 1
    assert "✗ gateway:" in text
    assert "error class: unauthenticated" in text


def test_doctor_shows_the_sessions_remaining_lifetime_and_how_to_keep_it(tmp_path: Path, stack: Stack, team: Team,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 item 7: how long the session has left, and, with auto-refresh off, the command that keeps it."""
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-login", auto_refresh=False,
                    login_credential_duration_s=1800)
    code, text = _doctor()
    assert code == 0, text
    assert "min left)" in text, text  # "expires <time> (29 min left)"
    assert "auto-refresh: off: requests stop when this session's credentials expire" in text
    assert "run: byollm config set auto_refresh true" in text


def test_remaining_lifetime_reads_like_a_person_would_say_it() -> None:
    from datetime import UTC, datetime, timedelta

    from byollm.client.doctor import remaining_lifetime

    now = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert remaining_lifetime(now + timedelta(seconds=30), now) == "30 s left"
    assert remaining_lifetime(now + timedelta(minutes=42, seconds=5), now) == "42 min left"
    assert remaining_lifetime(now + timedelta(hours=1, minutes=5), now) == "1 h 5 min left"
    assert remaining_lifetime(now - timedelta(seconds=1), now) == "expired"
