"""``byollm admin ...`` end to end: bootstrap on a fresh data directory, then every command against a real
server over HTTP, including a refused command that must print the error's remediation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.cli.main import app
from byollm.settings import Settings

KEK = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data_dir = Path(tmp_path_factory.mktemp("cli"))
    base = {"BYOLLM_DATA_DIR": str(data_dir), "BYOLLM_KEK": KEK, "BYOLLM_RUN_TOOLS": "shell"}
    result = CliRunner().invoke(app, ["admin", "bootstrap", "--email", "op@cli.test", "--team", "cli-team"], env=base)
    assert result.exit_code == 0, result.output
    token = re.search(r"(byo_[A-Za-z0-9_-]{43})", result.output)
    team = re.search(r"created: ([0-9A-Za-z]{22})", result.output)
    assert token and team, result.output
    settings = Settings.from_env(base)
    with ServerThread(create_app(settings)) as server:
        yield {**base, "BYOLLM_URL": server.url, "BYOLLM_TOKEN": token.group(1), "BYOLLM_TEAM": team.group(1)}


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def run_json(env: dict[str, str], *args: str) -> object:
    return json.loads(run(env, *args, "--json"))


def test_bootstrap_refuses_a_second_operator(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["admin", "bootstrap", "--email", "again@cli.test"], env=env)
    assert result.exit_code == 1
    assert "already has an operator" in result.output


def test_policy_commands_route_a_model_and_disable_direct(env: dict[str, str]) -> None:
    policy = run_json(env, "admin", "policy", "set-model", "opus", "--bedrock", "--direct")
    assert isinstance(policy, dict)
    opus = next(m for m in policy["models"] if m["model"] == "claude-opus-4-7")
    assert opus["bedrock"] and opus["direct"] and opus["default_bedrock_id"].startswith("global.")
    assert policy["auto_allowed"] is True  # no direct model is disabled yet
    policy = run_json(env, "admin", "policy", "set-model", "haiku", "--bedrock", "--no-direct")
    assert isinstance(policy, dict) and policy["auto_allowed"] is False  # one disabled direct model turns Auto off
    policy = run_json(env, "admin", "policy", "direct-api", "off")
    assert isinstance(policy, dict) and policy["direct_api_disabled"] is True and policy["auto_allowed"] is False
    table = run(env, "admin", "policy", "show")
    assert "DISABLED for every model" in table and "claude-opus-4-7" in table


def test_alias_commands_and_the_family_mapping_switch(env: dict[str, str]) -> None:
    policy = run_json(env, "admin", "policy", "alias-add", "claude-opus-*", "sonnet")
    assert isinstance(policy, dict)
    assert policy["aliases"] == [{"pattern": "claude-opus-*", "target": "claude-sonnet-4-6"}]
    policy = run_json(env, "admin", "policy", "alias-add", "team-fast", "claude-haiku-4-5", "--position", "0")
    assert isinstance(policy, dict) and [a["pattern"] for a in policy["aliases"]] == ["team-fast", "claude-opus-*"]
    shown = " ".join(run(env, "admin", "policy", "show").split())  # rich wraps long lines
    assert "team-fast -> claude-haiku-4-5; claude-opus-* -> claude-sonnet-4-6" in shown
    policy = run_json(env, "admin", "policy", "alias-remove", "CLAUDE-OPUS-*")
    assert isinstance(policy, dict) and [a["pattern"] for a in policy["aliases"]] == ["team-fast"]
    refused = CliRunner().invoke(app, ["admin", "policy", "alias-add", "x-*", "no-such-model"], env=env)
    assert refused.exit_code == 1 and "aliases[1].target" in refused.output
    settings = json.loads(run(env, "admin", "settings", "set", "claude_family_mapping=false"))
    assert settings["claude_family_mapping"] is False and settings["bedrock_model_discovery"] is True
    assert "Claude family mapping: off" in " ".join(run(env, "admin", "policy", "show").split())
    run(env, "admin", "settings", "set", "claude_family_mapping=true")


def test_bedrock_and_settings_commands(env: dict[str, str]) -> None:
    host = run_json(env, "admin", "bedrock", "set", "--region", "eu-west-1",
                    "--role-arn", "arn:aws:iam::111122223333:role/byollm-team")
    assert host == {"region": "eu-west-1", "endpoint_url": None,
                    "role_arn": "arn:aws:iam::111122223333:role/byollm-team"}
    out = run(env, "admin", "settings", "set", "byok_allowed=true", "allowed_aws_accounts=111122223333",
              "monthly_ai_credits=5000")
    settings = json.loads(out)
    assert settings["byok_allowed"] is True and settings["allowed_aws_accounts"] == ["111122223333"]


def test_members_agents_tokens_and_audit(env: dict[str, str]) -> None:
    member = run_json(env, "admin", "members", "invite", "dev@cli.test")
    assert isinstance(member, dict) and member["role"] == "member"
    agent = run_json(env, "admin", "agents", "create", "nightly", "--model", "sonnet", "--tool", "shell")
    assert isinstance(agent, dict) and agent["default_model"] == "claude-sonnet-4-6" and agent["tools"] == ["shell"]
    issued = run(env, "admin", "tokens", "issue", "dev-laptop", "--user", member["user_uid"], "--days", "30")
    dev_token = re.search(r"(byo_[A-Za-z0-9_-]{43})", issued)
    assert dev_token, issued
    listing = run(env, "admin", "tokens", "list")
    assert dev_token.group(1) not in listing  # the value is shown once, never listed
    audit = run_json(env, "admin", "audit")
    assert isinstance(audit, list)
    actions = {e["action"] for e in audit}
    assert {"member.invite", "agent.create", "token.issue"} <= actions
    assert dev_token.group(1) not in json.dumps(audit)

    # the member's own token cannot change policy: the CLI prints the class and its remediation
    refused = CliRunner().invoke(app, ["admin", "policy", "direct-api", "on"],
                                 env={**env, "BYOLLM_TOKEN": dev_token.group(1)})
    assert refused.exit_code == 1
    assert "forbidden" in refused.output and "ask a team admin" in refused.output


def test_unreachable_server_is_reported_with_a_fix(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["admin", "whoami"], env={**env, "BYOLLM_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1
    assert "cannot reach the byollm server" in result.output and "byollm serve" in result.output
