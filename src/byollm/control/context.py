"""What every area of the control plane shares: the store, the catalog, the settings, the egress guard and the
hooks a change fires (the gateway's policy cache, the run service, the authentication cache).

``ControlService`` builds one ``ControlContext`` and hands it to the per-area modules (``teams``,
``policy_admin``, ``host_admin``, ``members``, ``agents``, ``tokens_admin``, ``operator``, ``reports``), so
each area is a set of functions over the same few collaborators instead of one large class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from byollm.catalog.types import Catalog, CatalogModel
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.operator_keys import OperatorKeys
from byollm.netguard import ALLOW_SETTING, DestinationRefused, EgressGuard
from byollm.policy import validate
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["KEEP", "AccessWithdrawn", "ControlContext", "Keep", "check_egress", "invalid", "now", "resolve_model"]

AccessWithdrawn = Callable[[str, str, str], Awaitable[int]]
"""``(team_uid, principal_uid, reason)``: a principal lost (some of) its access to a team; the run service
cancels the runs it started there. Returns how many runs were stopped."""


async def _no_runs(_team: str, _principal: str, _reason: str) -> int:
    return 0


class Keep(Enum):
    """A change command's "leave this field as it is" (distinct from ``None``, which clears a nullable one)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass
class ControlContext:
    """The collaborators of every control-plane area. ``access_withdrawn`` is wired after construction
    (``ControlService.on_access_withdrawn``): runs sit above this layer."""

    store: Store
    catalog: Catalog
    settings: Settings
    egress: EgressGuard
    policy_changed: Callable[[str], None]
    forget_cached_callers: Callable[[], None]
    operator_keys: OperatorKeys | None = None
    access_withdrawn: AccessWithdrawn = field(default=_no_runs)


def now() -> datetime:
    return datetime.now(UTC)


def invalid(exc: validate.InvalidValue) -> ByollmError:
    return exc.to_error()


def resolve_model(ctx: ControlContext, name: str, field: str) -> CatalogModel:
    model = ctx.catalog.resolve(name)
    if model is None:
        raise ByollmError(ErrorClass.INVALID_REQUEST, f"{field}: unknown model {name!r}", field=field)
    return model


async def check_egress(ctx: ControlContext, url: str, field: str = "endpoint_url") -> None:
    """Refuse an endpoint byollm must not call from inside the operator's network (SSRF; see
    ``byollm.netguard``), before it is stored. A hostname is resolved now: one that does not resolve is
    refused too, since byollm could not use it and nobody would have checked where it points once it
    did. The connection itself is checked again at request time."""
    try:
        await ctx.egress.check_url(url)
    except DestinationRefused as refused:
        if refused.unresolved:
            remedy = "check the hostname, or set it once it resolves from the byollm server"
        else:
            remedy = (f"byollm does not call internal addresses an admin sets; use a public endpoint hostname"
                      f" (or clear the URL for the regional endpoint), or ask the operator to allow this network"
                      f" in {ALLOW_SETTING} (for a VPC interface endpoint: the VPC's CIDR)")
        raise validate.InvalidValue(field, f"{refused.reason}: {remedy}").to_error() from None
