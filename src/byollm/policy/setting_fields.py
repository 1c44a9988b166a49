"""How a team setting is declared, so that ``TeamSettings`` is the one list of them.

Each field of ``TeamSettings`` is written with :func:`setting`, which keeps its default and carries a
:class:`SettingSpec` (bounds, help, whether it is shown redacted, how it is normalised) in the field's
metadata. The store's reader and writer, the control plane's view and update, and the admin API's input
schema all walk :func:`setting_specs` instead of repeating the field names, so a new setting is one field here
plus its table column and migration (which stay explicit: a migration is history).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "MAX_CREDITS",
    "SettingSpec",
    "setting",
    "setting_specs",
    "settings_from_values",
    "settings_to_values",
]

T = TypeVar("T")

MAX_CREDITS = 2**53 - 1
"""The largest integer every JSON client reads exactly; far inside the store's 64-bit columns (an unbounded
credit amount overflowed SQLite's INTEGER and answered 500: found by tests/fuzz)."""

Normaliser = Callable[[Any, str], Any]
"""``(value, field) -> value``: checks and canonicalises a submitted value; raises ``validate.InvalidValue``."""


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One team setting as every layer needs to know it.

    ``annotation`` is the resolved Python type of the field (``bool``, ``int | None``, ``frozenset[str]``);
    ``nullable`` settings accept ``null`` to clear them, the others read ``null`` as "leave it". ``url``
    settings are checked as outbound endpoints (scheme, egress allow-list); ``secret`` ones are shown only
    redacted. ``view_required`` keeps the published OpenAPI document's ``required`` list as it was before
    the fields were derived (new settings leave it False).
    """

    name: str
    annotation: Any
    default: Any
    help: str
    ge: int | None = None
    le: int | None = None
    max_length: int | None = None
    secret: bool = False
    url: bool = False
    normalise: Normaliser | None = None
    view_required: bool = False

    @property
    def nullable(self) -> bool:
        return _allows_none(self.annotation)

    @property
    def is_set(self) -> bool:
        """A set of strings in the domain; a sorted list on the wire and in the store."""
        return typing.get_origin(self.annotation) is frozenset

    @property
    def wire_type(self) -> Any:
        """The JSON-facing type: a ``frozenset[str]`` travels as ``list[str]``."""
        if self.is_set:
            (item,) = typing.get_args(self.annotation)
            return list[item]  # type: ignore[valid-type]
        return self.annotation

    def to_wire(self, value: Any) -> Any:
        return sorted(value) if self.is_set else value

    def from_wire(self, value: Any) -> Any:
        """A stored or submitted value back into the domain; a NULL for a required setting is its default
        (rows older than the setting's column)."""
        if value is None and not self.nullable:
            return self.default
        if self.is_set:
            return frozenset(str(v) for v in value)
        return value


_SPEC_KEY = "byollm.setting"


def setting(default: T, *, help: str, ge: int | None = None, le: int | None = None,
            max_length: int | None = None, secret: bool = False, url: bool = False,
            normalise: Normaliser | None = None, view_required: bool = False) -> T:
    """A ``TeamSettings`` field with its default and everything the other layers derive from it."""
    spec = {"default": default, "help": help, "ge": ge, "le": le, "max_length": max_length, "secret": secret,
            "url": url, "normalise": normalise, "view_required": view_required}
    return dataclasses.field(default=default, metadata={_SPEC_KEY: spec})


def setting_specs(cls: type[Any]) -> tuple[SettingSpec, ...]:
    """The settings a ``TeamSettings``-like dataclass declares, in declaration order (read once per class:
    the store reads them on every policy load)."""
    known = _SPECS.get(cls)
    if known is None:
        known = _SPECS[cls] = _read_specs(cls)
    return known


_SPECS: dict[type[Any], tuple[SettingSpec, ...]] = {}


def _read_specs(cls: type[Any]) -> tuple[SettingSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(_SPEC_KEY)
        if declared is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        specs.append(SettingSpec(name=f.name, annotation=hints[f.name], **declared))
    return tuple(specs)


def settings_to_values(settings: Any) -> dict[str, Any]:
    """A settings value as plain JSON-like values (sets as sorted lists), keyed by setting name."""
    return {spec.name: spec.to_wire(getattr(settings, spec.name)) for spec in setting_specs(type(settings))}


def settings_from_values(cls: type[T], values: Mapping[str, Any]) -> T:
    """The inverse of :func:`settings_to_values`; a missing or NULL required setting takes its default."""
    return cls(**{spec.name: spec.from_wire(values.get(spec.name)) for spec in setting_specs(cls)})


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(annotation)
    return annotation is type(None)
