"""The official Anthropic and OpenAI SDKs, unmodified, through ``byollm proxy``: plain, streaming and tool-use
requests on both routes (Bedrock with the user's credentials, a direct API without), BYOK, header hygiene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from byollm.client.aws import AwsCredentialSource
from byollm.client.tokenstore import byok_entry, open_token_store
from support.client_env import make_client_env, running_proxy
from support.stack import DEFAULT_MODELS, Stack

PROMPT = "Use get_weather for city=Rome please"
TOOL = {"name": "get_weather", "description": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
OPENAI_TOOL: Any = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                                     "parameters": TOOL["input_schema"]}}
HI: Any = [{"role": "user", "content": "hello proxy"}]
# claude-sonnet-4-6 goes through Bedrock; claude-haiku-4-5 and gpt-5 only to their direct APIs
MODELS = {**DEFAULT_MODELS, "claude-haiku-4-5": {"direct": True}}
ROUTES = [("claude-sonnet-4-6", "bedrock:"), ("claude-haiku-4-5", "anthropic:")]
OPENAI_ROUTES = [("claude-sonnet-4-6", "bedrock:"), ("gpt-5", "openai:")]


@pytest.fixture
def proxied(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    team = stack.new_team(MODELS)
    make_client_env(tmp_path, stack, team, monkeypatch)
    with running_proxy() as proxy:
        yield proxy


@pytest.mark.parametrize(("model", "route"), ROUTES)
def test_anthropic_sdk_plain_stream_and_tools(proxied: Any, model: str, route: str) -> None:
    client = anthropic.Anthropic(base_url=proxied.url, auth_token=proxied.key, max_retries=0)
    plain = client.messages.with_raw_response.create(model=model, max_tokens=50, messages=HI)
    assert plain.headers["x-byollm-route"].startswith(route)
    assert "hello proxy" in plain.parse().content[0].text  # type: ignore[union-attr]

    with client.messages.stream(model=model, max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "hello proxy" in text
    assert final.stop_reason == "end_turn"
    assert stream.response.headers["x-byollm-route"].startswith(route)

    tools = client.messages.create(model=model, max_tokens=200, tools=[TOOL],  # type: ignore[list-item]
                                   messages=[{"role": "user", "content": PROMPT}])
    assert tools.stop_reason == "tool_use"
    use = next(block for block in tools.content if block.type == "tool_use")
    assert use.name == "get_weather"
    follow = client.messages.create(model=model, max_tokens=200, tools=[TOOL],  # type: ignore[list-item]
                                    messages=[{"role": "user", "content": PROMPT},
                                              {"role": "assistant", "content": tools.content},  # type: ignore[typeddict-item]
                                              {"role": "user", "content": [{"type": "tool_result",
                                                                            "tool_use_id": use.id,
                                                                            "content": "sunny, 24C"}]}])
    assert follow.stop_reason == "end_turn"

    with client.messages.stream(model=model, max_tokens=200, tools=[TOOL],  # type: ignore[list-item]
                                messages=[{"role": "user", "content": PROMPT}]) as stream:
        streamed_tool = stream.get_final_message()
    assert streamed_tool.stop_reason == "tool_use"

    counted = client.messages.count_tokens(model=model, messages=HI)
    assert counted.input_tokens > 0


@pytest.mark.parametrize(("model", "route"), OPENAI_ROUTES)
def test_openai_sdk_plain_stream_and_tools(proxied: Any, model: str, route: str) -> None:
    client = openai.OpenAI(base_url=proxied.url + "/v1", api_key=proxied.key, max_retries=0)
    plain = client.chat.completions.with_raw_response.create(model=model, messages=HI)
    assert plain.headers["x-byollm-route"].startswith(route)
    assert "hello proxy" in (plain.parse().choices[0].message.content or "")

    chunks = list(client.chat.completions.create(model=model, messages=HI, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "hello proxy" in text

    tools = client.chat.completions.create(model=model, tools=[OPENAI_TOOL],
                                           messages=[{"role": "user", "content": PROMPT}])
    call = (tools.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments)  # type: ignore[union-attr]

    streamed = list(client.chat.completions.create(model=model, tools=[OPENAI_TOOL], stream=True,
                                                   messages=[{"role": "user", "content": PROMPT}]))
    names = [tc.function.name for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])
             if tc.function and tc.function.name]
    assert names == ["get_weather"]

    listed = client.models.list()
    assert any(m.id == model for m in listed.data)


def test_the_proxy_key_is_required_and_tool_auth_is_stripped(proxied: Any) -> None:
    with httpx.Client(base_url=proxied.url) as raw:
        no_key = raw.post("/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": HI})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["byollm"]["code"] == "unauthenticated"
        wrong = raw.post("/v1/chat/completions", headers={"authorization": "Bearer nope"},
                         json={"model": "gpt-5", "messages": HI})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "unauthenticated"  # OpenAI's shape on the OpenAI path
        # bogus credentials a tool might send are stripped and replaced by the user's own
        forged = raw.post("/v1/messages", headers={
            "x-api-key": proxied.key, "x-byollm-aws-access-key-id": "AKIAFORGED000000000",
            "x-byollm-aws-secret-access-key": "forged", "x-byollm-byok-anthropic": "sk-ant-forged"},
            json={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": HI})
        assert forged.status_code == 200, forged.text
        assert forged.headers["x-byollm-route"].startswith("bedrock:")
        assert raw.get("/healthz").status_code == 404


def test_byok_key_goes_only_to_its_direct_route_when_allowed(tmp_path: Path, stack: Stack,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    team = stack.new_team(MODELS, byok_allowed=True)
    make_client_env(tmp_path, stack, team, monkeypatch)
    own_key = stack.provider_keys["anthropic"]  # the simulator accepts it as a user's key too
    open_token_store().set(byok_entry("anthropic"), own_key)
    with running_proxy() as proxy:
        attacher = proxy.ctx.attacher  # type: ignore[attr-defined]
        haiku, _ = attacher.headers_for("claude-haiku-4-5")
        assert haiku["x-byollm-byok-anthropic"] == own_key
        assert not any(h.startswith("x-byollm-aws-") for h in haiku), "a direct-only model gets no AWS credentials"
        gpt, _ = attacher.headers_for("gpt-5")
        assert "x-byollm-byok-anthropic" not in gpt, "a key goes only to its own provider's routes"
        sonnet, _ = attacher.headers_for("sonnet")  # an alias, resolved through the catalog
        assert "x-byollm-aws-session-token" in sonnet
        client = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key, max_retries=0)
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    rows = stack.request_log(team.uid)
    assert any(r["credential"] == "byok" for r in rows), rows


def test_byok_key_is_not_sent_when_the_team_does_not_allow_it(tmp_path: Path, stack: Stack,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    team = stack.new_team(MODELS)  # byok_allowed defaults to false
    make_client_env(tmp_path, stack, team, monkeypatch)
    open_token_store().set(byok_entry("anthropic"), "sk-ant-not-allowed-0000000000000000")
    with running_proxy() as proxy:
        headers, _ = proxy.ctx.attacher.headers_for("claude-haiku-4-5")  # type: ignore[attr-defined]
    assert not any(h.startswith("x-byollm-byok-") for h in headers)


def test_snapshot_repr_never_shows_a_secret(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    team = stack.new_team()
    make_client_env(tmp_path, stack, team, monkeypatch)
    snapshot = AwsCredentialSource(auto_refresh=True).snapshot()
    shown = repr(snapshot)
    assert snapshot.secret_access_key not in shown
    assert snapshot.access_key_id not in shown
    assert snapshot.session_token and snapshot.session_token not in shown


def test_byollm_proxy_command_prints_env_lines_that_work(client_env: Any) -> None:
    import os
    import re
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    byollm = str(Path(sys.executable).with_name("byollm"))
    process = subprocess.Popen([byollm, "proxy", "--port", str(port)], env=client_env.subprocess_env(COLUMNS="300"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("OPENAI_API_KEY" in line for line in seen):
            seen.append(process.stderr.readline())
        text = "".join(seen)
        env = dict(re.findall(r"export (\w+)=(\S+)", text))
        assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        assert "AWS credentials: custom-process (profile sim-process), temporary" in text
        for _ in range(50):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        client = anthropic.Anthropic(base_url=env["ANTHROPIC_BASE_URL"], auth_token=env["ANTHROPIC_AUTH_TOKEN"],
                                     max_retries=0)
        answer = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=20, messages=HI)
        assert answer.headers["x-byollm-route"].startswith("bedrock:")
    finally:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
