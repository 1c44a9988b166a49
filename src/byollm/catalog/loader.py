"""Read the model catalog from YAML: the built-in ``models.yaml`` plus, optionally, an operator's file.

Why a hand-written reader rather than a schema library: an operator editing YAML needs a message that names
the file and the exact field (``ops.yaml: models[3].bedrock.profiles.us.regions: expected a list of region
names``), and the catalog must be refused whole at start, never half-loaded. Each ``_Node`` carries its path,
so every check reports where it failed.

Merging: the operator's entries are read with the same rules; an entry whose ``id`` matches a built-in model
replaces that model entirely (no deep merge, so what you read in one entry is what runs); a new ``id`` is
appended in file order. Names (ids, aliases, provider ids, Bedrock ids, profile ids) must then be unique
across the merged catalog. Top-level keys starting with ``x-`` are ignored (a home for YAML anchors).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from byollm.catalog.types import (
    DIRECT_PROVIDERS,
    REGION_PATTERN,
    BedrockOffering,
    Catalog,
    CatalogModel,
    Geography,
    InferenceProfile,
    Pricing,
)

__all__ = [
    "BUILTIN_SOURCE",
    "CatalogError",
    "load_catalog",
    "parse_catalog_text",
]

BUILTIN_SOURCE = "models.yaml"
"""How messages name the built-in catalog file."""

_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_TAG = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_FM_ID = re.compile(r"[a-z0-9-]+\.[A-Za-z0-9._:-]+")
_RESERVED_NAMES = frozenset({"auto"})
_GEO_REGION_PREFIX = {Geography.US: "us-", Geography.EU: "eu-", Geography.APAC: "ap-"}

_MODEL_KEYS = frozenset(
    {
        "id",
        "display_name",
        "aliases",
        "direct",
        "bedrock",
        "context_window",
        "max_output_tokens",
        "tools",
        "price_per_mtok",
        "tags",
        "quality_rank",
    }
)


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the file and the field."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.problem = message
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}")


@dataclass(frozen=True, slots=True)
class _Node:
    """A YAML value together with its source file and dotted path, for error messages."""

    value: Any
    source: str
    path: str

    def fail(self, message: str) -> CatalogError:
        return CatalogError(self.source, self.path, message)

    def child(self, key: str | int) -> _Node:
        sub = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else key)
        value = self.value[key] if isinstance(key, int) else self.value.get(key)
        return _Node(value, self.source, sub)

    def mapping(self, allowed: frozenset[str] | None = None, what: str = "a mapping") -> _Node:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected {what}")
        for key in self.value:
            if not isinstance(key, str):
                raise self.fail(f"keys must be strings, got {key!r}")
            if allowed is not None and key not in allowed and not key.startswith("x-"):
                raise self.child(key).fail(f"unknown field (expected one of: {', '.join(sorted(allowed))})")
        return self

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and self.value.get(key) is not None

    def items(self) -> Iterator[_Node]:
        if not isinstance(self.value, list):
            raise self.fail("expected a list")
        for i in range(len(self.value)):
            yield self.child(i)

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "a string") -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.fail(f"expected {what}")
        if pattern is not None and not pattern.fullmatch(self.value):
            raise self.fail(f"expected {what}, got {self.value!r}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail("expected true or false")
        return self.value

    def integer(self, minimum: int = 1) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer >= {minimum}")
        if self.value < minimum:
            raise self.fail(f"expected an integer >= {minimum}, got {self.value}")
        return self.value

    def price(self) -> Decimal:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, str)):
            raise self.fail('expected a price in USD per million tokens, e.g. "3.00"')
        try:
            amount = Decimal(str(self.value))
        except InvalidOperation:
            raise self.fail(f"expected a price in USD per million tokens, got {self.value!r}") from None
        if not amount.is_finite() or amount < 0:
            raise self.fail(f"expected a non-negative price, got {self.value!r}")
        return amount

    def strings(self, pattern: re.Pattern[str], what: str, *, allow_empty: bool = True) -> tuple[str, ...]:
        """A list of strings each matching ``pattern``; ``what`` names the items in messages."""
        if not isinstance(self.value, list) or not all(isinstance(v, str) for v in self.value):
            raise self.fail(f"expected a list of {what}")
        if not allow_empty and not self.value:
            raise self.fail(f"expected a non-empty list of {what}")
        for i, item in enumerate(self.value):
            if not pattern.fullmatch(item):
                raise self.child(i).fail(f"expected one of {what}, got {item!r}")
        if len(set(self.value)) != len(self.value):
            raise self.fail(f"duplicate entries in the list of {what}")
        return tuple(self.value)

    def required(self, key: str) -> _Node:
        node = self.child(key)
        if node.value is None:
            raise node.fail("required field is missing")
        return node


def _read_profiles(node: _Node, fm_id: str, offered: frozenset[str]) -> dict[Geography, InferenceProfile]:
    node.mapping(what="a mapping of geography (global, us, eu, apac) to profile")
    profiles: dict[Geography, InferenceProfile] = {}
    for key in node.value:
        entry = node.child(key)
        try:
            geo = Geography(key)
        except ValueError:
            raise entry.fail("unknown geography (expected one of: global, us, eu, apac)") from None
        entry.mapping(frozenset({"id", "regions"}), what="a mapping with regions (and optionally id)")
        profile_id = entry.child("id").string(_NAME, "a profile id") if entry.has("id") else f"{geo}.{fm_id}"
        regions_node = entry.required("regions")
        regions = frozenset(regions_node.strings(REGION_PATTERN, "region names", allow_empty=False))
        prefix = _GEO_REGION_PREFIX.get(geo)
        if prefix is not None:
            outside = sorted(r for r in regions if not r.startswith(prefix))
            if outside:
                raise regions_node.fail(f"regions outside the {geo} geography: {', '.join(outside)}")
        if not regions <= offered:
            raise regions_node.fail(
                "a profile routes only to regions that offer the model; not in bedrock.regions: "
                + ", ".join(sorted(regions - offered))
            )
        profiles[geo] = InferenceProfile(geography=geo, profile_id=profile_id, regions=regions)
    return profiles


def _read_bedrock(node: _Node) -> BedrockOffering:
    node.mapping(frozenset({"foundation_model_id", "on_demand", "regions", "profiles"}))
    fm_id = node.required("foundation_model_id").string(_FM_ID, "a Bedrock foundation-model id")
    on_demand = node.required("on_demand").boolean()
    regions = frozenset(node.required("regions").strings(REGION_PATTERN, "region names", allow_empty=False))
    profiles = _read_profiles(node.child("profiles"), fm_id, regions) if node.has("profiles") else {}
    if not on_demand and not profiles:
        raise node.fail("a model that is not invocable on demand needs at least one inference profile")
    return BedrockOffering(
        foundation_model_id=fm_id,
        on_demand=on_demand,
        regions=regions,
        profiles=MappingProxyType(profiles),
    )


def _read_model(node: _Node) -> CatalogModel:
    node.mapping(_MODEL_KEYS, what="a model mapping")
    model_id = node.required("id").string(_MODEL_ID, "a lowercase model id (letters, digits, . _ -)")
    if model_id in _RESERVED_NAMES:
        raise node.child("id").fail(f"{model_id!r} is reserved")
    aliases = node.child("aliases").strings(_NAME, "alias names") if node.has("aliases") else ()
    for i, alias in enumerate(aliases):
        if alias.lower() in _RESERVED_NAMES:
            raise node.child("aliases").child(i).fail(f"{alias!r} is reserved")
    direct = node.required("direct").mapping(frozenset({"provider", "model_id"}))
    provider = direct.required("provider").string(what="a provider")
    if provider not in DIRECT_PROVIDERS:
        raise direct.child("provider").fail(
            f"unknown provider {provider!r} (expected one of: {', '.join(sorted(DIRECT_PROVIDERS))})"
        )
    direct_id = direct.required("model_id").string(_NAME, "a provider model id")
    context_window = node.required("context_window").integer()
    max_output = node.required("max_output_tokens").integer()
    if max_output > context_window:
        raise node.child("max_output_tokens").fail(f"exceeds context_window ({context_window})")
    prices = node.required("price_per_mtok").mapping(frozenset({"input", "output"}))
    pricing = Pricing(prices.required("input").price(), prices.required("output").price())
    tags = frozenset(node.child("tags").strings(_TAG, "capability tags")) if node.has("tags") else frozenset()
    return CatalogModel(
        id=model_id,
        display_name=node.required("display_name").string(what="a display name"),
        provider=provider,
        direct_model_id=direct_id,
        context_window=context_window,
        max_output_tokens=max_output,
        supports_tools=node.required("tools").boolean(),
        pricing=pricing,
        quality_rank=node.required("quality_rank").integer(),
        aliases=aliases,
        tags=tags,
        bedrock=_read_bedrock(node.child("bedrock")) if node.has("bedrock") else None,
    )


def _read_document(text: str, source: str) -> list[tuple[CatalogModel, _Node]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CatalogError(source, "", f"not valid YAML{where}") from None
    root = _Node(data, source, "").mapping(frozenset({"version", "models"}), what="a mapping with `models`")
    if root.has("version") and root.child("version").value != 1:
        raise root.child("version").fail("unsupported catalog version (expected 1)")
    entries: list[tuple[CatalogModel, _Node]] = []
    seen: set[str] = set()
    for node in root.required("models").items():
        model = _read_model(node)
        if model.id in seen:
            raise node.child("id").fail(f"duplicate model id {model.id!r} in this file")
        seen.add(model.id)
        entries.append((model, node))
    return entries


def _named_fields(model: CatalogModel) -> Iterator[tuple[str, str]]:
    yield "id", model.id
    for i, alias in enumerate(model.aliases):
        yield f"aliases[{i}]", alias
    yield "direct.model_id", model.direct_model_id
    if model.bedrock is not None:
        yield "bedrock.foundation_model_id", model.bedrock.foundation_model_id
        for geo, profile in model.bedrock.profiles.items():
            yield f"bedrock.profiles.{geo}.id", profile.profile_id


def _check_unique_names(entries: Mapping[str, tuple[CatalogModel, _Node]]) -> None:
    owners: dict[str, str] = {}
    for model, node in entries.values():
        for field, name in _named_fields(model):
            owner = owners.setdefault(name.lower(), model.id)
            if owner != model.id:
                raise CatalogError(
                    node.source, f"{node.path}.{field}", f"name {name!r} is already used by model {owner!r}"
                )


def parse_catalog_text(text: str, source: str, *, extra: tuple[str, str] | None = None) -> Catalog:
    """Build a catalog from YAML text (``source`` names it in errors); merge ``extra`` = (text, source)."""
    merged: dict[str, tuple[CatalogModel, _Node]] = {m.id: (m, n) for m, n in _read_document(text, source)}
    if extra is not None:
        for model, node in _read_document(*extra):
            merged[model.id] = (model, node)  # replaces a same-id entry in place, else appends
    _check_unique_names(merged)
    return Catalog(model for model, _ in merged.values())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(str(path), "", f"cannot read the file ({exc.strerror or exc})") from None


def load_catalog(extra_path: str | Path | None = None, *, base_path: str | Path | None = None) -> Catalog:
    """Load the built-in catalog, merged with the operator's file at ``extra_path`` if given.

    ``base_path`` replaces the built-in file (tests, or an operator who wants full control). Raises
    ``CatalogError`` naming the file and field on any malformed entry; nothing is half-loaded.
    """
    if base_path is None:
        text = resources.files("byollm.catalog").joinpath("models.yaml").read_text(encoding="utf-8")
        source = BUILTIN_SOURCE
    else:
        text, source = _read_text(Path(base_path)), str(base_path)
    extra = None if extra_path is None else (_read_text(Path(extra_path)), str(extra_path))
    return parse_catalog_text(text, source, extra=extra)
