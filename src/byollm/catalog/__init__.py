"""The model catalog as data: which models exist, their ids on every host, Bedrock profiles, prices, tags.

Build one ``Catalog`` at start with ``load_catalog(settings.catalog_file)`` and hand it to the planner.
"""

from __future__ import annotations

from byollm.catalog.loader import BUILTIN_SOURCE, CatalogError, load_catalog, parse_catalog_text
from byollm.catalog.types import (
    CREDITS_PER_USD,
    DIRECT_PROVIDERS,
    GEOGRAPHIES,
    REGION_PATTERN,
    BedrockOffering,
    Catalog,
    CatalogModel,
    Geography,
    InferenceProfile,
    Pricing,
    partition_for_region,
)

__all__ = [
    "BUILTIN_SOURCE",
    "CREDITS_PER_USD",
    "DIRECT_PROVIDERS",
    "GEOGRAPHIES",
    "REGION_PATTERN",
    "BedrockOffering",
    "Catalog",
    "CatalogError",
    "CatalogModel",
    "Geography",
    "InferenceProfile",
    "Pricing",
    "load_catalog",
    "parse_catalog_text",
    "partition_for_region",
]
