"""The built-in catalog's content, its helpers, operator extension, and refusal of malformed files."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from byollm.catalog import (
    BUILTIN_SOURCE,
    CREDITS_PER_USD,
    Catalog,
    CatalogError,
    Geography,
    load_catalog,
    parse_catalog_text,
)
from byollm.catalog.types import partition_for_region

CATALOG = load_catalog()
US = ("us-east-1", "us-east-2", "us-west-2")
LARGE = (*US, "eu-central-1", "eu-west-1", "eu-west-3", "ap-northeast-1", "ap-southeast-2")
WIDE = (*LARGE, "eu-north-1", "ap-south-1", "ap-southeast-1")


@pytest.mark.parametrize(
    ("model_id", "display", "provider", "direct_id", "fm_id", "on_demand", "geos", "regions"),
    [
        (
            "claude-opus-4-7",
            "Claude Opus 4.7",
            "anthropic",
            "claude-opus-4-7",
            "anthropic.claude-opus-4-7-v1:0",
            False,
            {"global", "us", "eu", "apac"},
            LARGE,
        ),
        (
            "claude-sonnet-4-6",
            "Claude Sonnet 4.6",
            "anthropic",
            "claude-sonnet-4-6",
            "anthropic.claude-sonnet-4-6-v1:0",
            False,
            {"global", "us", "eu", "apac"},
            WIDE,
        ),
        (
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            "anthropic",
            "claude-haiku-4-5-20251001",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            True,
            {"global", "us", "eu", "apac"},
            WIDE,
        ),
        (
            "claude-opus-4-1",
            "Claude Opus 4.1",
            "anthropic",
            "claude-opus-4-1-20250805",
            "anthropic.claude-opus-4-1-20250805-v1:0",
            True,
            {"us"},
            US,
        ),
    ],
)
def test_bedrock_models_match_the_agreed_table(
    model_id: str,
    display: str,
    provider: str,
    direct_id: str,
    fm_id: str,
    on_demand: bool,
    geos: set[str],
    regions: tuple[str, ...],
) -> None:
    model = CATALOG.get(model_id)
    assert model is not None
    assert (model.display_name, model.provider, model.direct_model_id) == (display, provider, direct_id)
    assert model.bedrock is not None
    assert model.bedrock.foundation_model_id == fm_id
    assert model.bedrock.on_demand is on_demand
    assert model.bedrock.regions == frozenset(regions)
    assert {g.value for g in model.bedrock.profiles} == geos
    for geo, profile in model.bedrock.profiles.items():
        assert profile.profile_id == f"{geo.value}.{fm_id}"
        assert profile.regions <= model.bedrock.regions
    glob = model.bedrock.profiles.get(Geography.GLOBAL)
    if glob is not None:
        assert glob.regions == model.bedrock.regions
    assert model.context_window == 200_000
    assert model.supports_tools


@pytest.mark.parametrize(
    ("model_id", "provider", "window"),
    [
        ("gpt-5", "openai", 400_000),
        ("gpt-5-mini", "openai", 400_000),
        ("gemini-2.5-pro", "google", 1_048_576),
        ("gemini-2.5-flash", "google", 1_048_576),
    ],
)
def test_direct_only_models_have_no_bedrock(model_id: str, provider: str, window: int) -> None:
    model = CATALOG.get(model_id)
    assert model is not None
    assert model.bedrock is None
    assert model.provider == provider
    assert model.context_window == window


def test_catalog_ids_and_order() -> None:
    assert list(CATALOG.models) == [
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-opus-4-1",
        "gpt-5",
        "gpt-5-mini",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
    ]
    ranks = [m.quality_rank for m in CATALOG]
    assert len(set(ranks)) == len(ranks)


def test_geographic_profiles_route_to_their_geography_where_offered() -> None:
    assert CATALOG.profile_regions("us.anthropic.claude-opus-4-7-v1:0") == frozenset(US)
    assert CATALOG.profile_regions("eu.anthropic.claude-opus-4-7-v1:0") == {
        "eu-central-1",
        "eu-west-1",
        "eu-west-3",
    }
    assert CATALOG.profile_regions("eu.anthropic.claude-sonnet-4-6-v1:0") == {
        "eu-central-1",
        "eu-west-1",
        "eu-west-3",
        "eu-north-1",
    }
    assert CATALOG.profile_regions("apac.anthropic.claude-haiku-4-5-20251001-v1:0") == {
        "ap-northeast-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-south-1",
    }
    assert CATALOG.profile_regions("global.anthropic.claude-sonnet-4-6-v1:0") == frozenset(WIDE)
    assert CATALOG.profile_regions("nope") == frozenset()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-opus-4-7", "claude-opus-4-7"),
        ("opus", "claude-opus-4-7"),
        ("OPUS", "claude-opus-4-7"),
        (" claude-opus-4.7 ", "claude-opus-4-7"),
        ("sonnet", "claude-sonnet-4-6"),
        ("haiku", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic.claude-opus-4-7-v1:0", "claude-opus-4-7"),
        ("us.anthropic.claude-sonnet-4-6-v1:0", "claude-sonnet-4-6"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gemini-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
    ],
)
def test_resolve_names(name: str, expected: str) -> None:
    model = CATALOG.resolve(name)
    assert model is not None
    assert model.id == expected


@pytest.mark.parametrize("name", ["auto", "claude-9", "", "gpt"])
def test_resolve_unknown(name: str) -> None:
    assert CATALOG.resolve(name) is None


@pytest.mark.parametrize(
    ("model_id", "region", "expected"),
    [
        ("claude-opus-4-7", "us-east-1", "global.anthropic.claude-opus-4-7-v1:0"),
        ("claude-opus-4-7", "eu-west-3", "global.anthropic.claude-opus-4-7-v1:0"),
        ("claude-opus-4-7", "eu-north-1", None),  # not offered there
        ("claude-sonnet-4-6", "ap-south-1", "global.anthropic.claude-sonnet-4-6-v1:0"),
        ("claude-opus-4-1", "us-west-2", "us.anthropic.claude-opus-4-1-20250805-v1:0"),  # no global profile
        ("claude-opus-4-1", "eu-west-1", None),
        ("gpt-5", "us-east-1", None),
        ("claude-haiku-4-5", "sa-east-1", None),
        ("unknown", "us-east-1", None),
    ],
)
def test_default_bedrock_upstream(model_id: str, region: str, expected: str | None) -> None:
    assert CATALOG.default_bedrock_upstream(model_id, region) == expected


def test_default_upstream_falls_back_to_geo_then_on_demand_id() -> None:
    text = _doc(
        _model(
            bedrock={
                "foundation_model_id": "acme.widget-v1:0",
                "on_demand": True,
                "regions": ["us-east-1", "eu-west-1", "ca-central-1"],
                "profiles": {"global": {"regions": ["us-east-1"]}, "eu": {"regions": ["eu-west-1"]}},
            }
        )
    )
    catalog = parse_catalog_text(text, "t.yaml")
    assert catalog.default_bedrock_upstream("acme-widget", "us-east-1") == "global.acme.widget-v1:0"
    assert catalog.default_bedrock_upstream("acme-widget", "eu-west-1") == "eu.acme.widget-v1:0"
    assert catalog.default_bedrock_upstream("acme-widget", "ca-central-1") == "acme.widget-v1:0"


def test_bedrock_models_in_region() -> None:
    assert CATALOG.bedrock_models_in("us-east-1") == {
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-opus-4-1",
    }
    assert CATALOG.bedrock_models_in("eu-north-1") == {"claude-sonnet-4-6", "claude-haiku-4-5"}
    assert CATALOG.bedrock_models_in("sa-east-1") == frozenset()


def test_foundation_model_arns() -> None:
    fm = "anthropic.claude-opus-4-7-v1:0"
    assert CATALOG.foundation_model_arns(f"us.{fm}", "us-east-1") == tuple(
        f"arn:aws:bedrock:{r}::foundation-model/{fm}" for r in sorted(US)
    )
    opus = CATALOG.get("claude-opus-4-7")
    assert opus is not None and opus.bedrock is not None
    # a global profile: the model in the source region and the region-less ARN, not each destination region
    # (aws-facts.md, corrected 2026-12; Bedrock user guide "Global cross-Region inference")
    assert CATALOG.foundation_model_arns(f"global.{fm}", "eu-west-1") == (
        f"arn:aws:bedrock:eu-west-1::foundation-model/{fm}",
        f"arn:aws:bedrock:::foundation-model/{fm}",
    )
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    assert CATALOG.foundation_model_arns(haiku, "eu-west-3") == (
        f"arn:aws:bedrock:eu-west-3::foundation-model/{haiku}",
    )
    app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
    assert CATALOG.foundation_model_arns(app, "us-east-1") == ()
    assert Catalog.inference_profile_arn(f"us.{fm}", "us-east-1", "123456789012") == (
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{fm}"
    )


def test_partitions() -> None:
    assert partition_for_region("us-gov-west-1") == "aws-us-gov"
    assert partition_for_region("cn-north-1") == "aws-cn"
    assert partition_for_region("eu-west-1") == "aws"


def test_credits_are_cents_of_list_price() -> None:
    opus = CATALOG.get("claude-opus-4-7")
    assert opus is not None
    assert CREDITS_PER_USD == 100
    assert opus.pricing.cost_usd(1_000_000, 0) == Decimal("5.00")
    assert opus.pricing.credits(1_000_000, 100_000) == Decimal(750)  # $5 + $2.50
    assert opus.pricing.credits(1, 0) == Decimal("0.0005")


# --- operator extension ---------------------------------------------------------------------------------


def _model(model_id: str = "acme-widget", **over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": model_id,
        "display_name": "Acme Widget",
        "direct": {"provider": "anthropic", "model_id": f"{model_id}-direct"},
        "context_window": 100_000,
        "max_output_tokens": 8_000,
        "tools": True,
        "price_per_mtok": {"input": "1.00", "output": "2.00"},
        "quality_rank": 9,
    }
    entry.update(over)
    return entry


def _doc(*models: dict[str, object]) -> str:
    return yaml.safe_dump({"version": 1, "models": list(models)}, sort_keys=False)


def test_operator_file_overrides_and_adds(tmp_path: Path) -> None:
    extra = tmp_path / "ops.yaml"
    opus = _model(
        "claude-opus-4-7",
        display_name="Opus (house build)",
        aliases=["opus"],
        direct={"provider": "anthropic", "model_id": "claude-opus-4-7"},
        price_per_mtok={"input": 4, "output": 20.5},
    )
    extra.write_text(_doc(opus, _model("acme-widget", aliases=["widget"])))
    catalog = load_catalog(extra)
    assert next(iter(catalog.models)) == "claude-opus-4-7"  # replaced in place
    assert list(catalog.models)[-1] == "acme-widget"  # added at the end
    replaced = catalog.get("claude-opus-4-7")
    assert replaced is not None
    assert replaced.display_name == "Opus (house build)"
    assert replaced.bedrock is None  # whole-entry replacement, no deep merge
    assert replaced.pricing.output_per_mtok == Decimal("20.5")
    assert catalog.resolve("claude-opus-4.7") is None  # the replaced entry's aliases went with it
    widget = catalog.resolve("widget")
    assert widget is not None
    assert widget.id == "acme-widget"
    assert len(catalog) == len(CATALOG) + 1


def test_operator_alias_collision_names_operator_file(tmp_path: Path) -> None:
    extra = tmp_path / "ops.yaml"
    extra.write_text(_doc(_model("acme-widget", aliases=["sonnet"])))
    with pytest.raises(CatalogError) as info:
        load_catalog(extra)
    assert str(info.value) == (
        f"{extra}: models[0].aliases[0]: name 'sonnet' is already used by model 'claude-sonnet-4-6'"
    )


def test_missing_operator_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CatalogError, match=rf"^{missing}: cannot read the file"):
        load_catalog(missing)


def test_builtin_file_is_named_in_messages() -> None:
    assert BUILTIN_SOURCE == "models.yaml"


# --- malformed catalogs ---------------------------------------------------------------------------------

_GOOD_BEDROCK = {
    "foundation_model_id": "acme.widget-v1:0",
    "on_demand": False,
    "regions": ["us-east-1", "us-west-2"],
    "profiles": {"us": {"regions": ["us-east-1", "us-west-2"]}},
}


def _with_bedrock(**over: object) -> dict[str, object]:
    return _model(bedrock={**_GOOD_BEDROCK, **over})


MALFORMED: list[tuple[str, str]] = [
    ("models: {}", "models: expected a list"),
    ("[1, 2]", "expected a mapping with `models`"),
    ("version: 2\nmodels: []", "version: unsupported catalog version (expected 1)"),
    ("models: [1]", "models[0]: expected a model mapping"),
    ("nonsense: 1\nmodels: []", "nonsense: unknown field"),
    ("models: [\n", "not valid YAML at line"),
    (_doc(_model(), _model()), "models[1].id: duplicate model id 'acme-widget' in this file"),
    (_doc(_model("Bad Id")), "models[0].id: expected a lowercase model id"),
    (_doc(_model("auto")), "models[0].id: 'auto' is reserved"),
    (_doc(_model(aliases=["Auto"])), "models[0].aliases[0]: 'Auto' is reserved"),
    (_doc(_model(aliases="opus2")), "models[0].aliases: expected a list of alias names"),
    (_doc(_model(colour="blue")), "models[0].colour: unknown field"),
    (
        _doc({k: v for k, v in _model().items() if k != "display_name"}),
        "models[0].display_name: required field is missing",
    ),
    (
        _doc(_model(direct={"provider": "mistral", "model_id": "x"})),
        "models[0].direct.provider: unknown provider 'mistral'",
    ),
    (_doc(_model(context_window="big")), "models[0].context_window: expected an integer >= 1"),
    (_doc(_model(context_window=True)), "models[0].context_window: expected an integer >= 1"),
    (_doc(_model(max_output_tokens=200_000)), "models[0].max_output_tokens: exceeds context_window"),
    (_doc(_model(tools="yes")), "models[0].tools: expected true or false"),
    (
        _doc(_model(price_per_mtok={"input": "cheap", "output": 1})),
        "models[0].price_per_mtok.input: expected a price in USD per million tokens",
    ),
    (
        _doc(_model(price_per_mtok={"input": -1, "output": 1})),
        "models[0].price_per_mtok.input: expected a non-negative price",
    ),
    (_doc(_model(price_per_mtok={"input": 1})), "models[0].price_per_mtok.output: required field is missing"),
    (_doc(_model(tags=["Fast!"])), "models[0].tags[0]: expected one of capability tags"),
    (_doc(_model(quality_rank=0)), "models[0].quality_rank: expected an integer >= 1, got 0"),
    (_doc(_with_bedrock(regions="us-east-1")), "models[0].bedrock.regions: expected a list of region names"),
    (
        _doc(_with_bedrock(regions=["us-east-1", "Mars"])),
        "models[0].bedrock.regions[1]: expected one of region names, got 'Mars'",
    ),
    (
        _doc(_with_bedrock(foundation_model_id="widget")),
        "models[0].bedrock.foundation_model_id: expected a Bedrock foundation-model id",
    ),
    (_doc(_with_bedrock(on_demand=None)), "models[0].bedrock.on_demand: required field is missing"),
    (
        _doc(_with_bedrock(profiles={"us": {"regions": "us-east-1"}})),
        "models[0].bedrock.profiles.us.regions: expected a list of region names",
    ),
    (
        _doc(_with_bedrock(profiles={"us": {"regions": []}})),
        "models[0].bedrock.profiles.us.regions: expected a non-empty list of region names",
    ),
    (
        _doc(_with_bedrock(profiles={"mars": {"regions": ["us-east-1"]}})),
        "models[0].bedrock.profiles.mars: unknown geography",
    ),
    (
        _doc(_with_bedrock(profiles={"eu": {"regions": ["us-east-1"]}})),
        "models[0].bedrock.profiles.eu.regions: regions outside the eu geography: us-east-1",
    ),
    (
        _doc(_with_bedrock(profiles={"us": {"regions": ["us-east-2"]}})),
        "models[0].bedrock.profiles.us.regions: a profile routes only to regions that offer the model;"
        " not in bedrock.regions: us-east-2",
    ),
    (
        _doc(_with_bedrock(profiles={"us": {"regions": ["us-east-1"], "weight": 2}})),
        "models[0].bedrock.profiles.us.weight: unknown field",
    ),
    (
        _doc(_with_bedrock(profiles=None)),
        "models[0].bedrock: a model that is not invocable on demand needs at least one inference profile",
    ),
    (
        _doc(_model("w1"), _model("w2", aliases=["w1-direct"])),
        "models[1].aliases[0]: name 'w1-direct' is already used by model 'w1'",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_catalog_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as info:
        load_catalog(base_path=path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_malformed_operator_file_names_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text(
        textwrap.dedent("""\
        models:
          - id: acme
            display_name: Acme
            direct: {provider: anthropic, model_id: acme}
            bedrock:
              foundation_model_id: acme.a-v1:0
              on_demand: true
              regions: [us-east-1]
              profiles:
                us: {regions: us-east-1}
            context_window: 1000
            max_output_tokens: 100
            tools: false
            price_per_mtok: {input: 1, output: 1}
            quality_rank: 3
        """)
    )
    with pytest.raises(
        CatalogError, match=r"ops\.yaml: models\[0\]\.bedrock\.profiles\.us\.regions: expected a list"
    ):
        load_catalog(path)


def test_x_keys_are_ignored_for_anchors() -> None:
    text = "x-shared: &r [us-east-1]\n" + _doc(
        _model(bedrock={**_GOOD_BEDROCK, "on_demand": True, "profiles": None})
    )
    catalog = parse_catalog_text(text, "t.yaml")
    assert catalog.default_bedrock_upstream("acme-widget", "us-east-1") == "acme.widget-v1:0"
