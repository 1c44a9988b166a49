"""Build the doctor for one process (used by the admin API, the panel's Validate page and the CLI)."""

from __future__ import annotations

from byollm.catalog.types import Catalog
from byollm.control.service import ControlService
from byollm.doctor.service import Doctor
from byollm.gateway.executor import Gateway
from byollm.oidc.wiring import OidcServices
from byollm.policy.types import Host
from byollm.providers.http import HttpPool
from byollm.providers.registry import build_providers
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["build_doctor"]


def build_doctor(*, settings: Settings, store: Store, catalog: Catalog, oidc: OidcServices | None, gateway: Gateway,
                 control: ControlService, pool: HttpPool) -> Doctor:
    """The doctor, sharing the process's store, catalog, issuer, gateway planner and connection pool; its test
    prompts use the same Bedrock provider implementation as the gateway (from the one provider registry)."""
    return Doctor(settings=settings, store=store, catalog=catalog, control=control, gateway=gateway, oidc=oidc,
                  pool=pool, bedrock=build_providers(pool)[Host.BEDROCK])
