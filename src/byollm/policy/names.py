"""Which catalog model a requested name means for a team: admin aliases, catalog names, Claude families.

Why this exists: clients name models themselves and move on faster than any release of byollm. Claude Code
expands ``opus``/``sonnet``/``haiku`` to whatever its vendor shipped last week (``claude-opus-4-8``), and a
gateway that only knows its built-in list refuses every prompt on the vendor's release day. So a name is
resolved in three steps, first match wins:

1. the team's aliases, in the admin's order: ``pattern -> target``, where a pattern may use ``*`` (any run
   of characters) and ``?`` (one character), matched case-insensitively against the whole name. An alias
   wins over a catalog name, because it states the admin's intent ("serve opus requests as sonnet");
2. the catalog: ids, aliases, direct ids, Bedrock ids and profile ids;
3. the Claude family mapping (a team setting, on by default): a name that says ``claude`` and exactly one
   of ``opus``, ``sonnet`` or ``haiku`` goes to the best model of that family the team enables: the newest
   version, then the catalog's quality rank, then catalog order. Models discovered on the team's Bedrock
   (``policy.discovered``) are requested by their own names and never chosen here: an admin's enabling, not
   a listing, decides where a generic name goes.

Pure: no I/O, no clock; the gateway calls it per request with the team's (possibly refreshed) catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from byollm.catalog.types import Catalog, CatalogModel
from byollm.policy.types import ModelAlias, TeamPolicy

__all__ = [
    "ALIAS_PATTERN_CHARS",
    "CLAUDE_FAMILIES",
    "Resolution",
    "ResolvedVia",
    "alias_matches",
    "best_of_family",
    "claude_family",
    "enabled_model_ids",
    "model_version",
    "resolve_model_name",
]

CLAUDE_FAMILIES = ("opus", "sonnet", "haiku")
"""The Claude model families a client may name generically; one definition for every list of them."""

ALIAS_PATTERN_CHARS = re.compile(r"[A-Za-z0-9._:/@*?-]{1,200}")
"""What an alias pattern may contain (fullmatch): model-id characters plus the two wildcards."""

_WORDS = re.compile(r"[a-z]+|[0-9]+")
_VERSION_PART = re.compile(r"^\d{1,3}$")  # a date stamp (20250929) is not a version part


class ResolvedVia(StrEnum):
    ALIAS = "alias"
    CATALOG = "catalog"
    FAMILY = "family"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The model a name resolved to, how, and the rule that matched (for the answer's headers)."""

    model: CatalogModel
    via: ResolvedVia
    rule: str = ""  # the alias pattern or the family name; empty for a catalog name

    @property
    def label(self) -> str:
        """``alias:<pattern>``, ``family:<name>`` or ``catalog``: shown in ``x-byollm-model-rule``."""
        return f"{self.via.value}:{self.rule}" if self.rule else self.via.value


def _compile(pattern: str) -> re.Pattern[str]:
    parts = ("." + "*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    return re.compile("".join(parts))


def alias_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches an alias ``pattern`` (``*`` any run, ``?`` one character; case-insensitive)."""
    return _compile(pattern).fullmatch(name.strip().lower()) is not None


def claude_family(name: str) -> str | None:
    """The Claude family a name asks for (``claude-opus-4-8`` -> ``opus``), or None.

    The name must say ``claude`` and exactly one family, as a whole word: Bedrock ids
    (``us.anthropic.claude-sonnet-5-v1:0``) and dated ids (``claude-3-5-haiku-20241022``) qualify.
    """
    words = _WORDS.findall(name.lower())
    if "claude" not in words:
        return None
    found = {w for w in words if w in CLAUDE_FAMILIES}
    return next(iter(found)) if len(found) == 1 else None


def model_version(model_id: str) -> tuple[int, ...]:
    """The version numbers in a model id (``claude-opus-4-7`` -> (4, 7); ``claude-3-5-haiku`` -> (3, 5))."""
    return tuple(int(w) for w in _WORDS.findall(model_id.lower()) if _VERSION_PART.match(w))


def _enabled(policy: TeamPolicy, model: CatalogModel) -> bool:
    bedrock = policy.models.bedrock_enabled(model.id) and model.offered_on_bedrock_in(policy.bedrock.region)
    return bedrock or policy.models.direct_enabled(model.id)


def enabled_model_ids(policy: TeamPolicy, catalog: Catalog) -> list[str]:
    """The catalog ids the team can use, in catalog order (named in a model-not-found answer)."""
    return [m.id for m in catalog if _enabled(policy, m)]


def best_of_family(policy: TeamPolicy, catalog: Catalog, family: str) -> CatalogModel | None:
    """The team's best enabled model of a Claude family: newest version, then quality rank, then order."""
    members = [
        m for m in catalog
        if m.provider == "anthropic" and not m.discovered and claude_family(m.id) == family and _enabled(policy, m)
    ]
    if not members:
        return None
    return min(members, key=lambda m: (tuple(-v for v in model_version(m.id)), m.quality_rank, catalog.order(m.id)))


def _alias_target(catalog: Catalog, alias: ModelAlias) -> CatalogModel | None:
    return catalog.resolve(alias.target)


def resolve_model_name(policy: TeamPolicy, catalog: Catalog, name: str) -> Resolution | None:
    """The model ``name`` means for this team (see the module docstring), or None when nothing matches.

    An alias whose target the catalog no longer knows is skipped rather than failing every request.
    """
    wanted = name.strip()
    for alias in policy.models.aliases:
        if alias_matches(alias.pattern, wanted):
            target = _alias_target(catalog, alias)
            if target is not None:
                return Resolution(target, ResolvedVia.ALIAS, alias.pattern)
    model = catalog.resolve(wanted)
    if model is not None:
        return Resolution(model, ResolvedVia.CATALOG)
    if policy.settings.claude_family_mapping:
        family = claude_family(wanted)
        if family is not None:
            best = best_of_family(policy, catalog, family)
            if best is not None:
                return Resolution(best, ResolvedVia.FAMILY, family)
    return None
