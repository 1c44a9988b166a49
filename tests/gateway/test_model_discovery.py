"""Catalog refresh from the cloud: a Claude the team's Bedrock lists but byollm does not ship is usable by name,
read with the request's own AWS session (never stored), cached per team and region, and never read for a
name the shipped catalog knows. The simulator's world lists Claude Opus 5, newer than the catalog; a test adds
another model to the simulator's Bedrock after start-up."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from byollm.catalog import load_catalog
from byollm.catalog.discovery import catalog_id_for, models_from_bedrock
from byollm.gateway.model_discovery import BedrockModelDiscovery
from byollm.netguard import EgressGuard
from byollm.providers.base import AwsAuth
from byollm.providers.http import HttpPool
from support.stack import LOOPBACK_NETWORKS, Stack

HI = [{"role": "user", "content": "hi"}]


def client(stack: Stack, token: str, *, delegated: bool = True) -> anthropic.Anthropic:
    headers = stack.delegated_headers() if delegated else {}
    return anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=headers, max_retries=0)


def control_reads(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in stack.journal() if e["path"].startswith(("/foundation-models", "/inference-profiles"))]


def test_the_simulator_lists_a_newer_claude_than_the_catalog() -> None:
    assert load_catalog().resolve("claude-opus-5") is None  # if the catalog catches up, move the world on


def test_a_model_only_the_teams_bedrock_lists_is_served_there_by_its_name(stack: Stack) -> None:
    team = stack.new_team()
    stack.clear_journal()
    raw = client(stack, team.token).messages.with_raw_response.create(model="claude-opus-5", max_tokens=50,
                                                                     messages=HI)
    assert raw.parse().role == "assistant"
    assert raw.headers["x-byollm-model"] == "claude-opus-5"
    assert raw.headers["x-byollm-route"] == "bedrock:global.anthropic.claude-opus-5-v1:0"
    reads = control_reads(stack)
    assert [r["path"] for r in reads] == ["/foundation-models", "/inference-profiles"]
    # signed with the caller's own temporary session (ASIA… keys): nothing of byollm's own is used
    for read in reads:
        headers = {k.lower(): v for k, v in dict(read["headers"]).items()}
        assert "Credential=ASIA" in headers["authorization"] and headers.get("x-amz-security-token")

    stack.clear_journal()  # cached for the team and region: the next request reads nothing
    again = client(stack, team.token).messages.with_raw_response.create(model="claude-opus-5", max_tokens=50,
                                                                       messages=HI)
    assert again.headers["x-byollm-model"] == "claude-opus-5" and control_reads(stack) == []
    counted = client(stack, team.token).messages.count_tokens(model="claude-opus-5", messages=HI)
    assert counted.input_tokens > 0

    listed = [m.id for m in client(stack, team.token).models.list(limit=100)]
    assert "claude-opus-5" in listed


def test_known_names_never_wait_for_the_control_plane(stack: Stack) -> None:
    team = stack.new_team()
    stack.clear_journal()
    for name in ("claude-opus-4-7", "sonnet", "us.anthropic.claude-haiku-4-5-20251001-v1:0"):
        client(stack, team.token).messages.create(model=name, max_tokens=20, messages=HI)
    assert control_reads(stack) == []


def test_a_model_added_to_bedrock_after_start_up_is_usable_through_the_refresh(stack: Stack) -> None:
    r = stack.sim_http.put("/_sim/models/anthropic.claude-sonnet-5-20261201-v1:0", json={
        "catalog_id": "claude-sonnet-5", "name": "Claude Sonnet 5", "provider": "Anthropic", "on_demand": True,
        "profiles": ["us"], "regions": ["us-east-1", "us-west-2"]})
    assert r.status_code == 200, r.text
    try:
        team = stack.new_team()
        raw = client(stack, team.token).messages.with_raw_response.create(model="claude-sonnet-5", max_tokens=50,
                                                                         messages=HI)
        assert raw.headers["x-byollm-model"] == "claude-sonnet-5"  # its own name wins over the family mapping
        assert raw.headers["x-byollm-route"] == "bedrock:us.anthropic.claude-sonnet-5-20261201-v1:0"
        # a team in a region the model is not offered in maps the name onto its family instead
        eu = stack.new_team(region="eu-west-1")
        mapped = client(stack, eu.token).messages.with_raw_response.create(model="claude-sonnet-5", max_tokens=50,
                                                                          messages=HI)
        assert mapped.headers["x-byollm-model"] == "claude-sonnet-4-6"
        assert mapped.headers["x-byollm-model-rule"] == "family:sonnet"
    finally:
        stack.sim_http.delete("/_sim/models/anthropic.claude-sonnet-5-20261201-v1:0")


def test_without_aws_credentials_or_with_discovery_off_the_name_maps_onto_its_family(stack: Stack) -> None:
    team = stack.new_team(credentialless_direct_allowed=True)  # the team serves requests without an AWS session
    direct = client(stack, team.token, delegated=False).messages.with_raw_response.create(
        model="claude-opus-5", max_tokens=50, messages=HI)
    assert direct.headers["x-byollm-model"] == "claude-opus-4-7"
    assert direct.headers["x-byollm-route"].startswith("anthropic:")

    off = stack.new_team()
    assert off.settings(bedrock_model_discovery=False)["bedrock_model_discovery"] is False
    stack.clear_journal()
    raw = client(stack, off.token).messages.with_raw_response.create(model="claude-opus-5", max_tokens=50,
                                                                    messages=HI)
    assert raw.headers["x-byollm-model"] == "claude-opus-4-7"
    assert control_reads(stack) == []


async def test_a_read_the_cloud_refuses_leaves_the_catalog_and_is_retried_only_later(stack: Stack) -> None:
    """Credentials AWS does not accept (or an identity without bedrock:ListFoundationModels): the request goes on
    with the shipped catalog, and the failure is remembered for a while instead of read again per request."""
    catalog = load_catalog()
    pool = HttpPool(guard=EgressGuard(allowed=LOOPBACK_NETWORKS))
    try:
        discovery = BedrockModelDiscovery(pool, catalog, retry_after_s=60)
        bogus = AwsAuth("ASIA" + "X" * 16, "y" * 40, "z" * 100)
        stack.clear_journal()
        assert await discovery.catalog_for("T" * 22, "us-east-1", stack.sim.url, bogus) is catalog
        assert await discovery.catalog_for("T" * 22, "us-east-1", stack.sim.url, bogus) is catalog
        assert len(control_reads(stack)) == 1  # the second call used the remembered failure
        good = stack.session_credentials()
        auth = AwsAuth(good["AccessKeyId"], good["SecretAccessKey"], good["SessionToken"])
        fresh = BedrockModelDiscovery(pool, catalog)
        found = await fresh.catalog_for("T" * 22, "us-east-1", stack.sim.url, auth)
        assert found.resolve("claude-opus-5") is not None and found.resolve("claude-opus-4-7") is not None
    finally:
        await pool.close()


@pytest.mark.parametrize(("fm_id", "name"), [
    ("anthropic.claude-opus-5-v1:0", "claude-opus-5"),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
    ("anthropic.claude-sonnet-5-20261201-v2", "claude-sonnet-5"),
])
def test_discovered_models_are_named_as_anthropic_names_them(fm_id: str, name: str) -> None:
    assert catalog_id_for(fm_id) == name


def test_only_invocable_anthropic_models_are_taken_from_the_listing() -> None:
    catalog = load_catalog()
    summaries = [
        {"modelId": "anthropic.claude-opus-5-v1:0", "providerName": "Anthropic", "modelName": "Claude Opus 5",
         "inferenceTypesSupported": ["INFERENCE_PROFILE"], "outputModalities": ["TEXT"]},
        {"modelId": "anthropic.claude-x-1-v1:0", "providerName": "Anthropic", "modelName": "No profile here",
         "inferenceTypesSupported": ["INFERENCE_PROFILE"]},
        {"modelId": "amazon.nova-pro-v1:0", "providerName": "Amazon", "inferenceTypesSupported": ["ON_DEMAND"]},
        {"modelId": "anthropic.claude-opus-4-7-v1:0", "providerName": "Anthropic",
         "inferenceTypesSupported": ["INFERENCE_PROFILE"]},  # shipped: left to the catalog
    ]
    profiles = [{"inferenceProfileId": "us.anthropic.claude-opus-5-v1:0", "status": "ACTIVE", "models": [
        {"modelArn": f"arn:aws:bedrock:{r}::foundation-model/anthropic.claude-opus-5-v1:0"}
        for r in ("us-east-1", "us-west-2")]}]
    found = models_from_bedrock("us-east-1", summaries, profiles, catalog)
    assert [m.id for m in found] == ["claude-opus-5"]
    offering = found[0].bedrock
    assert offering is not None and offering.default_upstream("us-east-1") == "us.anthropic.claude-opus-5-v1:0"
    assert found[0].discovered and found[0].pricing.credits(1000, 1000) == 0
    assert models_from_bedrock("eu-west-1", summaries, profiles, catalog) == []  # no profile from there
