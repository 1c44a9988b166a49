"""Catalog entries for models the team's own Bedrock lists but byollm does not ship (pure; no I/O).

Why: a customer enables a new Claude in their Bedrock account on its release day; byollm's built-in list is
weeks older. The gateway reads the Bedrock control plane for the team's region (``ListFoundationModels`` and
``ListInferenceProfiles``, see ``gateway/model_discovery.py``) and this module turns the answers into
``CatalogModel`` values: Anthropic models only (the Bedrock adapter speaks Anthropic's Messages body), served on
Bedrock only (no direct-API id or price is known), with the system profiles that route them and can be
invoked from the region. Limits the listing does not state (context window, output limit) take the largest of
the catalog's own Claude models, so the planner never refuses a request the upstream would take; the upstream
says no where the real limit is lower.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from byollm.catalog.types import (
    BedrockOffering,
    Catalog,
    CatalogModel,
    Geography,
    InferenceProfile,
    Pricing,
)

__all__ = ["DISCOVERED_QUALITY_RANK", "catalog_id_for", "models_from_bedrock"]

DISCOVERED_QUALITY_RANK = 1000
"""Auto weighs only what the catalog states about a model; a discovered one ranks after every shipped one."""

_PROVIDER_PREFIX = re.compile(r"^[a-z0-9-]+\.")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_DATE_SUFFIX = re.compile(r"-\d{8}$")
_FM_ARN = re.compile(r"^arn:[a-z-]+:bedrock:([a-z0-9-]*):[0-9]*:foundation-model/(.+)$")


def catalog_id_for(foundation_model_id: str) -> str:
    """The name a discovered model is requested by: ``anthropic.claude-opus-5-20260101-v1:0`` ->
    ``claude-opus-5`` (provider prefix, Bedrock version and date stamp dropped), as Anthropic names it."""
    name = _VERSION_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", foundation_model_id.strip().lower()))
    return _DATE_SUFFIX.sub("", name)


def _profiles_for(fm_id: str, region: str, profiles: Iterable[Mapping[str, Any]]) -> dict[Geography, InferenceProfile]:
    out: dict[Geography, InferenceProfile] = {}
    for summary in profiles:
        profile_id = str(summary.get("inferenceProfileId") or "")
        geo_name, _, rest = profile_id.partition(".")
        if rest != fm_id or summary.get("status", "ACTIVE") != "ACTIVE":
            continue
        try:
            geo = Geography(geo_name)
        except ValueError:
            continue
        regions = set()
        for entry in summary.get("models") or []:
            match = _FM_ARN.match(str(entry.get("modelArn", ""))) if isinstance(entry, Mapping) else None
            if match and match.group(2) == fm_id and match.group(1):
                regions.add(match.group(1))
        if region in regions:  # a profile is invoked from one of the regions it routes to
            out[geo] = InferenceProfile(geo, profile_id, frozenset(regions))
    return out


def models_from_bedrock(region: str, model_summaries: Iterable[Mapping[str, Any]],
                        profile_summaries: Iterable[Mapping[str, Any]], known: Catalog) -> list[CatalogModel]:
    """Models ``ListFoundationModels`` lists in ``region`` that ``known`` cannot resolve, as catalog entries.

    Only active Anthropic text models that stream; each is callable on demand or through a listed system
    profile, else it is left out (nothing could invoke it from this region).
    """
    claude = [m for m in known if m.provider == "anthropic"]
    context_window = max((m.context_window for m in claude), default=200_000)
    max_output = max((m.max_output_tokens for m in claude), default=64_000)
    profiles = list(profile_summaries)
    out: list[CatalogModel] = []
    seen: set[str] = set()
    for summary in model_summaries:
        fm_id = str(summary.get("modelId") or "")
        if (not fm_id or str(summary.get("providerName", "")).lower() != "anthropic"
                or "TEXT" not in (summary.get("outputModalities") or ["TEXT"])
                or summary.get("responseStreamingSupported") is False
                or (summary.get("modelLifecycle") or {}).get("status", "ACTIVE") != "ACTIVE"):
            continue
        model_id = catalog_id_for(fm_id)
        if not model_id or model_id in seen or known.resolve(fm_id) is not None or known.resolve(model_id) is not None:
            continue
        on_demand = "ON_DEMAND" in (summary.get("inferenceTypesSupported") or [])
        geo_profiles = _profiles_for(fm_id, region, profiles)
        if not on_demand and not geo_profiles:
            continue
        regions = frozenset({region}.union(*(p.regions for p in geo_profiles.values())))
        seen.add(model_id)
        out.append(CatalogModel(
            id=model_id,
            display_name=str(summary.get("modelName") or model_id),
            provider="anthropic",
            direct_model_id=model_id,
            context_window=context_window,
            max_output_tokens=max_output,
            supports_tools=True,
            pricing=Pricing(Decimal(0), Decimal(0)),  # served on the customer's Bedrock bill only
            quality_rank=DISCOVERED_QUALITY_RANK,
            bedrock=BedrockOffering(foundation_model_id=fm_id, on_demand=on_demand, regions=regions,
                                    profiles=geo_profiles),
            discovered=True,
        ))
    return out
