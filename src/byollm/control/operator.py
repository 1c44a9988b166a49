"""The operator's instance-wide provider keys: which direct providers have one (never the keys), and setting
or deleting one together with its audit entry."""

from __future__ import annotations

from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Host
from byollm.store import audit as audit_repo

__all__ = ["provider_keys", "set_provider_key"]


async def provider_keys(ctx: ControlContext, caller: Caller) -> dict[str, bool]:
    """Which direct providers have an operator key (never the keys)."""
    require(caller, Action.OPERATE)
    configured = ctx.operator_keys.providers if ctx.operator_keys else frozenset()
    return {host.value: host in configured for host in Host if host.is_direct}


async def set_provider_key(ctx: ControlContext, caller: Caller, provider: str,
                           api_key: str | None) -> dict[str, bool]:
    require(caller, Action.OPERATE)
    try:
        host = Host(provider)
    except ValueError:
        host = Host.BEDROCK
    if not host.is_direct:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "provider: expected anthropic, openai or google")
    if ctx.operator_keys is None:
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "provider keys are not available in this process")
    if api_key is not None and not api_key.strip():
        raise ByollmError(ErrorClass.INVALID_REQUEST, "api_key: must not be empty")
    async with ctx.store.session() as session:  # the key and its audit entry: both or neither
        await ctx.operator_keys.write(session, host, api_key.strip() if api_key else None)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid,
                                      action="provider_key.set" if api_key else "provider_key.delete",
                                      target=host.value, after={"configured": api_key is not None})
    await ctx.operator_keys.refresh()
    return await provider_keys(ctx, caller)
