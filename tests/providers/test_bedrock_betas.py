"""The Bedrock adapter sends Bedrock only the ``anthropic_beta`` values and tool fields it accepts.

Why: one beta Bedrock does not list fails the whole request with 400 "invalid beta flag", and clients such as
Claude Code send many; ``defer_loading`` on a tool is refused the same way. The simulator refuses both as AWS
does (tests/sim/test_bedrock_runtime.py); these tests pin the adapter's table and its log line.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from byollm.policy.types import BillingBucket, CredentialSource, Host, RouteCandidate
from byollm.providers.base import AwsAuth, CanonicalRequest, UpstreamCall
from byollm.providers.bedrock import bedrock_body
from byollm.providers.bedrock_betas import BEDROCK_BETAS, loggable_betas, split_betas


def _call(body: dict[str, Any], betas: tuple[str, ...] = ()) -> UpstreamCall:
    return UpstreamCall(
        candidate=RouteCandidate(model="claude-haiku-4-5", host=Host.BEDROCK,
                                 upstream_model_id="anthropic.claude-haiku-4-5", region="us-east-1",
                                 credential=CredentialSource.DELEGATED_SESSION, billing=BillingBucket.CUSTOMER_CLOUD),
        request=CanonicalRequest(body={"model": "m", "max_tokens": 5, "messages": [], **body}, anthropic_beta=betas,
                                 request_id="req-betas"),
        auth=AwsAuth("ASIAEXAMPLEEXAMPLE01", "secret-not-real", "token-not-real"),
        base_url="http://127.0.0.1:9", timeout_s=5, read_timeout_s=5,
    )


@pytest.mark.parametrize(
    ("requested", "forwarded", "hints", "unsupported"),
    [
        ([], [], [], []),
        (["claude-code-20250219"], [], ["claude-code-20250219"], []),
        (["oauth-2025-04-20", "fine-grained-tool-streaming-2025-05-14"], [],
         ["oauth-2025-04-20", "fine-grained-tool-streaming-2025-05-14"], []),
        (["interleaved-thinking-2025-05-14", "interleaved-thinking-2025-05-14"], ["interleaved-thinking-2025-05-14"],
         [], []),
        (["context-1m-2025-08-07"], ["context-1m-2025-08-07"], [], []),
        (["mcp-servers-2025-12-04", "structured-outputs-2025-11-13", "prompt-caching-scope-2026-01-05"], [], [],
         ["mcp-servers-2025-12-04", "structured-outputs-2025-11-13", "prompt-caching-scope-2026-01-05"]),
        (["claude-code-20250219", "effort-2025-11-24", "extended-cache-ttl-2025-04-11", "tool-search-tool-2025-10-19"],
         ["effort-2025-11-24", "tool-search-tool-2025-10-19"], ["claude-code-20250219"],
         ["extended-cache-ttl-2025-04-11"]),
    ],
)
def test_split_betas(requested: list[str], forwarded: list[str], hints: list[str], unsupported: list[str]) -> None:
    assert split_betas(requested) == (forwarded, hints, unsupported)


def test_every_documented_beta_is_forwarded() -> None:
    assert split_betas(sorted(BEDROCK_BETAS))[0] == sorted(BEDROCK_BETAS)


def test_body_keeps_only_accepted_betas_from_header_and_body(caplog: pytest.LogCaptureFixture) -> None:
    call = _call({"anthropic_beta": ["token-efficient-tools-2025-02-19", "files-api-2025-04-14"]},
                 ("claude-code-20250219", "interleaved-thinking-2025-05-14", "mcp-servers-2025-12-04"))
    with caplog.at_level(logging.WARNING, logger="byollm.providers.bedrock"):
        body = orjson.loads(bedrock_body(call))
    assert body["anthropic_beta"] == ["token-efficient-tools-2025-02-19", "interleaved-thinking-2025-05-14"]
    assert "model" not in body and body["anthropic_version"] == "bedrock-2023-05-31"
    # the dropped feature betas are named for the operator; the client hint is not
    [record] = [r for r in caplog.records if r.name == "byollm.providers.bedrock"]
    assert "req-betas" in record.getMessage()
    assert "files-api-2025-04-14, mcp-servers-2025-12-04" in record.getMessage()
    assert "claude-code" not in record.getMessage()


def test_only_hints_leave_no_beta_list_and_no_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="byollm.providers.bedrock"):
        body = orjson.loads(bedrock_body(_call({}, ("claude-code-20250219",))))
    assert "anthropic_beta" not in body
    assert not [r for r in caplog.records if r.name == "byollm.providers.bedrock"]


def test_defer_loading_is_stripped_from_custom_tools_only() -> None:
    schema = {"type": "object", "properties": {}}
    tools = [{"name": "a", "input_schema": schema, "defer_loading": True},
             {"type": "custom", "name": "b", "input_schema": schema, "defer_loading": False},
             {"name": "c", "input_schema": schema},
             {"type": "tool_search_tool_regex_20251119", "name": "tool_search"}]
    body = orjson.loads(bedrock_body(_call({"tools": tools})))
    assert body["tools"] == [{"name": "a", "input_schema": schema},
                             {"type": "custom", "name": "b", "input_schema": schema},
                             {"name": "c", "input_schema": schema},
                             {"type": "tool_search_tool_regex_20251119", "name": "tool_search"}]
    assert tools[0]["defer_loading"] is True  # the caller's body is not changed


def test_a_value_not_shaped_like_a_beta_is_counted_not_logged() -> None:
    assert loggable_betas(["mcp-servers-2025-12-04", "sk-ant-api03-SECRET VALUE", "abcdefsecretlowercase"]) == (
        "mcp-servers-2025-12-04, 2 value(s) not shaped like a beta name")
