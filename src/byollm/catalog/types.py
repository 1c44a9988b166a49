"""Frozen catalog values: models, their Bedrock offering and profiles, prices, and the catalog index.

Why frozen dataclasses: the route planner in ``policy`` is pure and runs on every request, so it reads plain
immutable values with indexes computed once when the catalog is built (aliases, region lists, profile ids),
never a parser or a file. The loader (``catalog.loader``) is the only place that reads YAML.

Credits: AI credits are the unit the team's monthly allowance is counted in. One credit is one US cent
(``CREDITS_PER_USD = 100``), so a request costs ``price_per_mtok * tokens / 1e6 * 100`` credits, exactly, as a
``Decimal``; the ledger decides how to round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "CREDITS_PER_USD",
    "DIRECT_PROVIDERS",
    "GEOGRAPHIES",
    "REGION_PATTERN",
    "BedrockOffering",
    "Catalog",
    "CatalogModel",
    "Geography",
    "InferenceProfile",
    "Pricing",
    "partition_for_region",
]

CREDITS_PER_USD = 100
"""One AI credit is one US cent of list price."""

DIRECT_PROVIDERS = frozenset({"anthropic", "openai", "google"})
"""Direct-API providers a catalog model may name; each matches a ``policy.types.Host`` value."""

REGION_PATTERN = re.compile(r"(?:[a-z]{2}|us-gov|us-iso|us-isob|eu-isoe)-[a-z]+-[1-9][0-9]?")
"""An AWS region name (``us-east-1``, ``eu-central-2``, ``us-gov-west-1``, ``cn-north-1``); use fullmatch."""

_MTOK = Decimal(1_000_000)


class Geography(StrEnum):
    """The prefix of a system inference profile id (``<geo>.<foundation-model-id>``)."""

    GLOBAL = "global"
    US = "us"
    EU = "eu"
    APAC = "apac"


GEOGRAPHIES: tuple[Geography, ...] = tuple(Geography)


def partition_for_region(region: str) -> str:
    """The ARN partition a region belongs to: ``aws-us-gov``, ``aws-cn`` or ``aws``."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


@dataclass(frozen=True, slots=True)
class Pricing:
    """List price in USD per million tokens, used to count AI credits for operator-paid routes."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal

    def cost_usd(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (self.input_per_mtok * input_tokens + self.output_per_mtok * output_tokens) / _MTOK

    def credits(self, input_tokens: int, output_tokens: int) -> Decimal:
        """AI credits for this usage (1 credit = $0.01), exact; the ledger rounds."""
        return self.cost_usd(input_tokens, output_tokens) * CREDITS_PER_USD


@dataclass(frozen=True, slots=True)
class InferenceProfile:
    """A system (cross-region) inference profile: callable from, and routing to, ``regions``."""

    geography: Geography
    profile_id: str
    regions: frozenset[str]


@dataclass(frozen=True, slots=True)
class BedrockOffering:
    """How a model is offered on Bedrock: its foundation-model id, profiles and the regions that serve it."""

    foundation_model_id: str
    on_demand: bool  # whether the bare foundation-model id can be invoked without a profile
    regions: frozenset[str]
    profiles: Mapping[Geography, InferenceProfile] = field(default_factory=lambda: MappingProxyType({}))

    def default_upstream(self, region: str) -> str | None:
        """The id byollm sends by default from ``region``; None when nothing here serves that region.

        Order: the global profile, then the geography's profile containing the region, then the bare
        foundation-model id if it is invocable on demand. Global first because it spreads load over the
        most capacity (and is what the product documents as the default).
        """
        if region not in self.regions:
            return None
        glob = self.profiles.get(Geography.GLOBAL)
        if glob is not None and region in glob.regions:
            return glob.profile_id
        for geo in (Geography.US, Geography.EU, Geography.APAC):
            profile = self.profiles.get(geo)
            if profile is not None and region in profile.regions:
                return profile.profile_id
        return self.foundation_model_id if self.on_demand else None


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model byollm knows, with every id it has on every host.

    ``quality_rank`` orders models for Auto: 1 is the best; ties break by catalog order.
    ``max_output_tokens`` is the most the model can generate in one response.
    """

    id: str
    display_name: str
    provider: str  # direct-API provider: anthropic, openai or google
    direct_model_id: str
    context_window: int
    max_output_tokens: int
    supports_tools: bool
    pricing: Pricing
    quality_rank: int
    aliases: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    bedrock: BedrockOffering | None = None
    discovered: bool = False  # listed by the team's Bedrock, not shipped in the catalog (catalog.discovery)

    def fits(self, input_tokens: int, output_tokens: int, uses_tools: bool) -> bool:
        """Whether this model can serve a request of this shape (context, output limit, tools)."""
        if uses_tools and not self.supports_tools:
            return False
        if output_tokens > self.max_output_tokens:
            return False
        return input_tokens + output_tokens <= self.context_window

    def offered_on_bedrock_in(self, region: str) -> bool:
        return self.bedrock is not None and region in self.bedrock.regions


def _names_of(model: CatalogModel) -> list[str]:
    names = [model.id, *model.aliases, model.direct_model_id]
    if model.bedrock is not None:
        names.append(model.bedrock.foundation_model_id)
        names.extend(p.profile_id for p in model.bedrock.profiles.values())
    return [n.lower() for n in names]


@dataclass(frozen=True, slots=True, init=False, eq=False)
class Catalog:
    """The models byollm can route to, in catalog order, with lookup indexes built once.

    Every name resolves case-insensitively: the catalog id, an alias, the direct-API model id, the Bedrock
    foundation-model id, or a system inference-profile id. Construction raises ``ValueError`` if two models
    claim the same name, so a lookup is never ambiguous.
    """

    models: Mapping[str, CatalogModel]
    _names: Mapping[str, str] = field(repr=False)
    _profiles: Mapping[str, tuple[str, InferenceProfile]] = field(repr=False)
    _fm_ids: Mapping[str, str] = field(repr=False)
    _bedrock_by_region: Mapping[str, frozenset[str]] = field(repr=False)
    _order: Mapping[str, int] = field(repr=False)

    def __init__(self, models: Iterable[CatalogModel]) -> None:
        by_id: dict[str, CatalogModel] = {}
        names: dict[str, str] = {}
        profiles: dict[str, tuple[str, InferenceProfile]] = {}
        fm_ids: dict[str, str] = {}
        by_region: dict[str, set[str]] = {}
        for model in models:
            if model.id in by_id:
                raise ValueError(f"duplicate model id {model.id!r}")
            by_id[model.id] = model
            for name in _names_of(model):
                owner = names.setdefault(name, model.id)
                if owner != model.id:
                    raise ValueError(f"name {name!r} is claimed by both {owner!r} and {model.id!r}")
            if model.bedrock is not None:
                fm_ids[model.bedrock.foundation_model_id] = model.id
                for profile in model.bedrock.profiles.values():
                    profiles[profile.profile_id] = (model.id, profile)
                for region in model.bedrock.regions:
                    by_region.setdefault(region, set()).add(model.id)
        set_ = object.__setattr__
        set_(self, "models", MappingProxyType(by_id))
        set_(self, "_names", MappingProxyType(names))
        set_(self, "_profiles", MappingProxyType(profiles))
        set_(self, "_fm_ids", MappingProxyType(fm_ids))
        set_(self, "_bedrock_by_region", MappingProxyType({r: frozenset(m) for r, m in by_region.items()}))
        set_(self, "_order", MappingProxyType({mid: i for i, mid in enumerate(by_id)}))

    def extended(self, models: Iterable[CatalogModel]) -> Catalog:
        """This catalog plus ``models`` (after these, in order); a model whose id or any name this catalog
        already claims is left out, so an extension can never shadow or make ambiguous a known name."""
        extra = [m for m in models if m.id not in self.models and not any(n in self._names for n in _names_of(m))]
        return Catalog([*self.models.values(), *extra]) if extra else self

    def __iter__(self) -> Iterator[CatalogModel]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.models

    def get(self, model_id: str) -> CatalogModel | None:
        """The model with exactly this catalog id."""
        return self.models.get(model_id)

    def resolve(self, name: str) -> CatalogModel | None:
        """The model a request names (id, alias, provider id, Bedrock id or profile id), or None."""
        model_id = self._names.get(name.strip().lower())
        return None if model_id is None else self.models[model_id]

    def order(self, model_id: str) -> int:
        """Position in the catalog, the last tie-breaker wherever models are ranked."""
        return self._order[model_id]

    def bedrock_models_in(self, region: str) -> frozenset[str]:
        """Catalog ids offered on Bedrock in ``region``: one half of the Bedrock-eligibility rule."""
        return self._bedrock_by_region.get(region, frozenset())

    def default_bedrock_upstream(self, model_id: str, region: str) -> str | None:
        """The Bedrock id byollm sends for ``model_id`` from ``region`` unless the admin overrides it."""
        model = self.models.get(model_id)
        if model is None or model.bedrock is None:
            return None
        return model.bedrock.default_upstream(region)

    def profile(self, profile_id: str) -> InferenceProfile | None:
        found = self._profiles.get(profile_id)
        return None if found is None else found[1]

    def profile_regions(self, profile_id: str) -> frozenset[str]:
        """Regions a system inference profile routes to (empty for ids the catalog does not know)."""
        found = self._profiles.get(profile_id)
        return frozenset() if found is None else found[1].regions

    def foundation_model_arns(self, upstream_id: str, region: str) -> tuple[str, ...]:
        """Foundation-model ARNs an IAM policy must allow for a route sending ``upstream_id`` from ``region``.

        A geographic profile (``us.``, ``eu.``, ``apac.``…) needs the foundation model in the source region and
        in every region it routes to; a global profile needs it in the source region plus the region-less
        ARN (``arn:aws:bedrock:::foundation-model/…``) that global cross-region inference is authorised
        against (with ``aws:RequestedRegion`` = ``unspecified``), not each destination region (the Bedrock
        user guide's "Global cross-Region inference" IAM section); a bare foundation-model id needs it in
        the source region.
        Application-inference-profile ARNs and unknown ids give an empty tuple: what they
        route to is only known to the customer's account. The profile's own ARN needs the account id, see
        ``inference_profile_arn``.
        """
        partition = partition_for_region(region)
        found = self._profiles.get(upstream_id)
        if found is not None:
            model = self.models[found[0]]
            assert model.bedrock is not None
            fm = model.bedrock.foundation_model_id
            profile = found[1]
            if profile.geography is Geography.GLOBAL:
                return (f"arn:{partition}:bedrock:{region}::foundation-model/{fm}",
                        f"arn:{partition}:bedrock:::foundation-model/{fm}")
            return tuple(
                f"arn:{partition_for_region(r)}:bedrock:{r}::foundation-model/{fm}"
                for r in sorted(profile.regions | {region})
            )
        if upstream_id in self._fm_ids:
            return (f"arn:{partition}:bedrock:{region}::foundation-model/{upstream_id}",)
        return ()

    @staticmethod
    def inference_profile_arn(profile_id: str, region: str, account_id: str) -> str:
        """The ARN of a system inference profile as invoked from ``region`` in ``account_id``."""
        partition = partition_for_region(region)
        return f"arn:{partition}:bedrock:{region}:{account_id}:inference-profile/{profile_id}"
