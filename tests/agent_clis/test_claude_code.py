"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``) against byollm, as a new user runs it.

Two routes, no model pinned by hand:

- ``bedrock``: ``byollm exec -- claude ...`` after ``byollm login``, with an AWS profile: the proxy attaches
  the user's own AWS session, so the team's Bedrock serves (and ``exec`` sets Claude Code's model
  variables from the team's models, among them Claude Opus 5, which only the team's Bedrock lists);
- ``direct``: ``ANTHROPIC_BASE_URL`` + ``ANTHROPIC_AUTH_TOKEN`` straight at the gateway, the two variables the
  README shows: Claude Code names its own newest models (``claude-opus-4-8``…) and the family mapping
  serves them with the team's best model of each family.

Each scenario checks Claude Code's own output and what byollm recorded (the request log) or sent upstream
(the simulator's journal): the default model, ``--model sonnet|haiku|opus``, a tool round trip (the
simulated model asks for Bash; Claude Code runs it and sends the result back), ``--output-format stream-json
--verbose``, and ``count_tokens`` (Claude Code's ``/context`` counts its memory files with it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from byollm.sim.bedrock_runtime import BEDROCK_ANTHROPIC_BETAS
from support.claude_code import ClaudeRun, claude_env, run_claude
from support.client_env import make_client_env
from support.stack import Stack, Team, running_stack

ROUTES = ["bedrock", "direct"]
# what each route's default and `--model` aliases are served by (see the module docstring)
SERVED = {
    "bedrock": {"default": "claude-opus-5", "opus": "claude-opus-5", "sonnet": "claude-sonnet-4-6",
                "haiku": "claude-haiku-4-5"},
    "direct": {"default": "claude-opus-4-7", "opus": "claude-opus-4-7", "sonnet": "claude-sonnet-4-6",
               "haiku": "claude-haiku-4-5"},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("claude-code"))) as s:
        yield s


@dataclass
class Claude:
    stack: Stack
    team: Team
    route: str
    tmp_path: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> ClaudeRun:
        run = run_claude(self.tmp_path, args, env=self.env, through_exec=self.route == "bedrock")
        assert run.result.returncode == 0, run.result.describe()
        return run

    def logged(self) -> list[dict[str, Any]]:
        return self.stack.request_log(self.team.uid)

    def served(self) -> set[str]:
        rows = self.logged()
        failed = [r for r in rows if (r.get("status") or 200) >= 400]
        assert failed == [], failed
        return {str(r["served_model"]) for r in rows if r.get("served_model")}

    @property
    def upstream_service(self) -> str:
        return "bedrock-runtime" if self.route == "bedrock" else "anthropic"


@pytest.fixture(params=ROUTES)
def claude(request: pytest.FixtureRequest, stack: Stack, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Claude:
    route = str(request.param)
    # the direct route sends no AWS session: the team must serve such requests on its AI credits
    team = stack.new_team(credentialless_direct_allowed=route == "direct")
    if route == "bedrock":
        client = make_client_env(tmp_path / "client", stack, team, monkeypatch)
        env = claude_env(tmp_path / "home", {**client.env, "HOME": str(tmp_path / "home")})
    else:
        env = claude_env(tmp_path / "home", {"ANTHROPIC_BASE_URL": stack.url, "ANTHROPIC_AUTH_TOKEN": team.token})
    stack.clear_journal()
    return Claude(stack, team, route, tmp_path, env)


def _bedrock_betas_allowed(claude: Claude) -> None:
    """Every body Bedrock received carries only the ``anthropic_beta`` values AWS documents (Claude Code sends
    ``claude-code-20250219`` and others in its ``anthropic-beta`` header, which real Bedrock refuses with
    "invalid beta flag"), and no tool ``defer_loading``."""
    if claude.route != "bedrock":
        return
    bodies = []
    for entry in claude.stack.journal("bedrock-runtime"):
        body = json.loads(entry["body"])
        if "count-tokens" in entry["path"]:
            body = json.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
        bodies.append(body)
    assert bodies
    for body in bodies:
        assert set(body.get("anthropic_beta", [])) <= BEDROCK_ANTHROPIC_BETAS, body.get("anthropic_beta")
        assert all("defer_loading" not in tool for tool in body.get("tools", []))


def _answered(run: ClaudeRun) -> str:
    final = run.final
    assert final["is_error"] is False and final["subtype"] == "success", final
    return str(final["result"])


def test_the_default_model_works_with_nothing_pinned(claude: Claude) -> None:
    answer = _answered(claude("say hello to byollm"))
    expected = SERVED[claude.route]["default"]
    assert answer.startswith(f"[{'bedrock' if claude.route == 'bedrock' else 'anthropic'}:") and expected in answer
    assert claude.served() == {expected}
    requested = {str(r["requested_model"]) for r in claude.logged()}
    if claude.route == "direct":  # Claude Code's own newest opus name, served through the family mapping
        assert all(name.startswith("claude-opus-") for name in requested), requested
    # inference went only where the route says; on the Bedrock route `byollm exec` listing the team's models
    # also read the Bedrock control plane (the catalog refresh) with the user's session
    services = {e["service"] for e in claude.stack.journal()}
    assert services - {"bedrock"} == {claude.upstream_service}
    assert ("bedrock" in services) is (claude.route == "bedrock")
    _bedrock_betas_allowed(claude)


@pytest.mark.parametrize("alias", ["sonnet", "haiku", "opus"])
def test_model_aliases_reach_the_teams_model_of_that_family(claude: Claude, alias: str) -> None:
    answer = _answered(claude("say hello to byollm", "--model", alias))
    expected = SERVED[claude.route][alias]
    assert expected in answer
    assert expected in claude.served()


def test_a_tool_round_trip(claude: Claude) -> None:
    run = claude('Use Bash with command="echo hello-from-bash"', "--tools", "Bash", "--allowedTools", "Bash")
    answer = _answered(run)
    assert "Tool Bash returned: hello-from-bash" in answer  # Claude Code ran it and sent the result back
    assert run.final["num_turns"] == 2
    bodies = [e["body"] for e in claude.stack.journal() if e["service"] == claude.upstream_service]
    assert any('"tool_result"' in body and "hello-from-bash" in body for body in bodies)
    _bedrock_betas_allowed(claude)


def test_stream_json_output(claude: Claude) -> None:
    run = claude("say hello to byollm", "--output-format", "stream-json", "--verbose")
    kinds = [e.get("type") for e in run.events]
    assert kinds[0] == "system" and "assistant" in kinds and kinds[-1] == "result"
    assert _answered(run)
    texts = [block.get("text", "") for e in run.events if e.get("type") == "assistant"
             for block in e["message"]["content"] if block.get("type") == "text"]
    assert any(SERVED[claude.route]["default"] in text for text in texts)


def test_count_tokens(claude: Claude) -> None:
    (claude.tmp_path / "work").mkdir(exist_ok=True)
    (claude.tmp_path / "work" / "CLAUDE.md").write_text("Always answer politely.\n")
    answer = _answered(claude("/context"))
    assert "Memory files" in answer
    counted = [e for e in claude.stack.journal() if "count" in e["path"].lower()]
    assert counted, "Claude Code's /context asked byollm to count no tokens"
    assert {e["service"] for e in counted} == {claude.upstream_service}
    _bedrock_betas_allowed(claude)
