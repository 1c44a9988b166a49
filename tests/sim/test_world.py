"""World loading: the default world's catalogue, profile routing, and loader errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byollm.catalog import load_catalog
from byollm.sim.world import WorldError, default_world, load_world, parse_world

MODELS = {
    # catalog id: (foundation-model id, on demand, profile geos, regions)
    "claude-opus-4-7": (
        "anthropic.claude-opus-4-7-v1:0",
        False,
        ("global", "us", "eu", "apac"),
        {
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "eu-central-1",
            "eu-west-1",
            "eu-west-3",
            "ap-northeast-1",
            "ap-southeast-2",
        },
    ),
    "claude-sonnet-4-6": (
        "anthropic.claude-sonnet-4-6-v1:0",
        False,
        ("global", "us", "eu", "apac"),
        {
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "eu-central-1",
            "eu-west-1",
            "eu-west-3",
            "ap-northeast-1",
            "ap-southeast-2",
            "eu-north-1",
            "ap-south-1",
            "ap-southeast-1",
        },
    ),
    "claude-haiku-4-5": (
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        True,
        ("global", "us", "eu", "apac"),
        {
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "eu-central-1",
            "eu-west-1",
            "eu-west-3",
            "ap-northeast-1",
            "ap-southeast-2",
            "eu-north-1",
            "ap-south-1",
            "ap-southeast-1",
        },
    ),
    "claude-opus-4-1": (
        "anthropic.claude-opus-4-1-20250805-v1:0",
        True,
        ("us",),
        {"us-east-1", "us-east-2", "us-west-2"},
    ),
}


def test_default_world_models_match_the_catalog() -> None:
    world = default_world()
    by_catalog = {m.catalog_id: m for m in world.models.values()}
    # plus one model newer than the catalog, which only the gateway's catalog refresh can find
    assert set(by_catalog) == {*MODELS, "claude-opus-5"}
    assert load_catalog().resolve("claude-opus-5") is None
    for catalog_id, (fm_id, on_demand, geos, regions) in MODELS.items():
        model = by_catalog[catalog_id]
        assert (model.model_id, model.on_demand, model.profile_geos, set(model.regions)) == (
            fm_id,
            on_demand,
            geos,
            regions,
        )


def test_profile_routing() -> None:
    world = default_world()
    opus = world.models["anthropic.claude-opus-4-7-v1:0"]
    sonnet = world.models["anthropic.claude-sonnet-4-6-v1:0"]
    assert world.profile_regions("us", opus) == ("us-east-1", "us-east-2", "us-west-2")
    assert world.profile_regions("eu", opus) == ("eu-central-1", "eu-west-1", "eu-west-3")
    assert world.profile_regions("eu", sonnet) == ("eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1")
    assert world.profile_regions("apac", sonnet) == ("ap-northeast-1", "ap-southeast-1", "ap-southeast-2", "ap-south-1")
    assert set(world.profile_regions("global", opus)) == set(opus.regions)
    assert world.system_profile("eu.anthropic.claude-opus-4-1-20250805-v1:0") is None
    assert world.system_profile("us.anthropic.claude-opus-4-1-20250805-v1:0") is not None


def test_default_accounts() -> None:
    world = default_world()
    customer = world.accounts["111122223333"]
    assert {"byollm-team", "byollm-agent"} <= set(customer.roles)
    assert customer.roles["byollm-team"].trust_policy is None
    assert customer.users["byollm-dev"].access_keys[0].access_key_id.startswith("AKIA")
    assert "444455556666" in world.accounts
    assert set(world.provider_keys) == {"anthropic", "openai", "google"}


def test_round_trip_through_json() -> None:
    world = default_world()
    again = parse_world(json.loads(json.dumps(world.to_json())))
    assert again.to_json() == world.to_json()


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"accounts": {"12": {"regions": []}}}, "accounts.12"),
        (
            {"accounts": {"111122223333": {"regions": ["us-east-1"], "roles": {"r": {"max_session_duration": "x"}}}}},
            "accounts.111122223333.roles.r.max_session_duration",
        ),
        (
            {"accounts": {"111122223333": {"regions": ["us-east-1"], "roles": {"r": {"max_session_duration": 60}}}}},
            "accounts.111122223333.roles.r.max_session_duration",
        ),
        ({"models": [{"id": "m", "regions": ["us-east-1"], "profiles": ["mars"]}]}, "models[0].profiles[0]"),
        ({"models": [{"id": "m", "regions": []}]}, "models[0].regions"),
        (
            {"accounts": {"111122223333": {"regions": [], "oidc_providers": [{"url": "https://x.example:8443"}]}}},
            "accounts.111122223333.oidc_providers[0].url",
        ),
        (
            {
                "accounts": {
                    "111122223333": {"regions": [], "users": {"u": {"access_keys": [{"id": "ASIA1", "secret": "s"}]}}}
                }
            },
            "accounts.111122223333.users.u.access_keys[0].id",
        ),
        ({"direct": {"mistral": {"api_keys": []}}}, "direct.mistral"),
        ({"accounts": {"111122223333": {"regions": [], "roles": {"r": {"policies": {"p": "{nope"}}}}}}, "policies.p"),
    ],
)
def test_loader_errors_name_the_field(data: dict[str, object], path: str) -> None:
    with pytest.raises(WorldError) as info:
        parse_world(data)
    assert path in str(info.value)


def test_http_loopback_issuers_only_when_allowed() -> None:
    provider = {"oidc_providers": [{"url": "http://127.0.0.1:8000"}], "regions": []}
    with pytest.raises(WorldError):
        parse_world({"accounts": {"111122223333": provider}})
    world = parse_world({"allow_http_loopback_issuers": True, "accounts": {"111122223333": provider}})
    assert "127.0.0.1:8000" in world.accounts["111122223333"].oidc_providers


def test_load_world_from_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "w.yaml"
    yaml_file.write_text("seed: 7\naccounts:\n  '111122223333': {regions: [us-east-1]}\n")
    assert load_world(yaml_file).seed == 7
    json_file = tmp_path / "w.json"
    json_file.write_text(json.dumps({"seed": 3}))
    assert load_world(json_file).seed == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("accounts: [unclosed\n")
    with pytest.raises(WorldError, match="not valid YAML"):
        load_world(bad)
    with pytest.raises(WorldError, match="cannot read"):
        load_world(tmp_path / "missing.yaml")
