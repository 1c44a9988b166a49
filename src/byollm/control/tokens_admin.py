"""Team-scoped tokens: list, issue (for yourself or one of the team's agents), revoke; a revocation clears
the authentication cache and stops the runs the token's principal started in the team."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext, invalid, now
from byollm.control.tokens import new_token
from byollm.control.views import IssuedToken, TokenView
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import validate
from byollm.policy.types import Role
from byollm.store import agents as agents_repo
from byollm.store import audit as audit_repo
from byollm.store import policy as policy_repo
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store.records import PrincipalType, TokenRecord

__all__ = ["issue_token", "list_tokens", "new_token_in", "revoke_token"]


def _token_view(record: TokenRecord) -> TokenView:
    return TokenView(uid=record.uid, name=record.name, principal_type=record.principal_type.value,
                     principal_uid=record.principal_uid, team_uid=record.team_uid,
                     display_prefix=record.display_prefix, created_at=record.created_at,
                     expires_at=record.expires_at, last_used_at=record.last_used_at, revoked_at=record.revoked_at)


async def list_tokens(ctx: ControlContext, caller: Caller, team_uid: str) -> list[TokenView]:
    require(caller, Action.OWN_TOKENS, team_uid)
    is_admin = caller.role_in(team_uid) is Role.ADMIN
    async with ctx.store.session(readonly=True) as session:
        if is_admin:
            records = await tokens_repo.list_tokens(session, team_uid=team_uid, include_revoked=True)
        else:
            records = await tokens_repo.list_tokens(
                session, team_uid=team_uid, include_revoked=True,
                principal_type=PrincipalType.USER, principal_uid=caller.principal_uid,
            )
    return [_token_view(r) for r in records]


async def issue_token(ctx: ControlContext, caller: Caller, team_uid: str, *, name: str,
                      user_uid: str | None = None, agent_uid: str | None = None,
                      expires_in_days: int | None = None) -> IssuedToken:
    if user_uid and agent_uid:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "give user_uid or agent_uid, not both")
    try:
        name = validate.validate_label(name, field="name")
    except validate.InvalidValue as exc:
        raise invalid(exc) from None
    for_self = agent_uid is None and user_uid in (None, caller.principal_uid)
    require(caller, Action.OWN_TOKENS if for_self else Action.MANAGE_TOKENS, team_uid)
    operator = caller.is_operator and caller.token_team_uid is None
    if not for_self and agent_uid is None and not operator:
        # A token lets its bearer act as its holder, audited under the holder's name, so a team admin never
        # mints one for another person (the operator, another team's member): members issue their own, a
        # new member's first token comes with the invitation, and admins issue tokens for the team's agents.
        raise ByollmError(ErrorClass.FORBIDDEN, "a token can be issued only for yourself or for one of the"
                          " team's agents; ask the member to issue their own", user_uid=user_uid)
    principal_type = PrincipalType.AGENT if agent_uid else PrincipalType.USER
    principal_uid = agent_uid or user_uid or caller.principal_uid
    async with ctx.store.session() as session:
        if principal_type is PrincipalType.USER and (
            await teams_repo.find_membership(session, team_uid=team_uid, user_uid=principal_uid) is None
        ):
            raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=principal_uid)
        if principal_type is PrincipalType.AGENT:
            await agents_repo.get_agent(session, team_uid=team_uid, agent_uid=principal_uid)  # in this team
        return await new_token_in(session, caller, team_uid, name=name, principal_type=principal_type,
                                  principal_uid=principal_uid, expires_in_days=expires_in_days)


async def new_token_in(session: Any, caller: Caller, team_uid: str, *, name: str,
                       principal_type: PrincipalType, principal_uid: str,
                       expires_in_days: int | None) -> IssuedToken:
    """Create and audit one team-scoped token in ``session``; its lifetime is capped by the team's limit."""
    generated = new_token()
    policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
    limit = policy.settings.max_token_lifetime_days
    days = expires_in_days if limit is None else min(expires_in_days or limit, limit)
    record = await tokens_repo.create_token(
        session, principal_type=principal_type, principal_uid=principal_uid, team_uid=team_uid,
        token_hash=generated.sha256, display_prefix=generated.display_prefix, name=name.strip(),
        expires_at=now() + timedelta(days=days) if days else None,
    )
    await audit_repo.append_audit(
        session, actor_uid=caller.principal_uid, action="token.issue", target=record.uid, team_uid=team_uid,
        after={"name": record.name, "principal_type": principal_type.value, "principal_uid": principal_uid,
               "expires_at": record.expires_at},
    )
    return IssuedToken(token=generated.value, details=_token_view(record))


async def revoke_token(ctx: ControlContext, caller: Caller, team_uid: str, token_uid: str) -> None:
    require(caller, Action.OWN_TOKENS, team_uid)
    async with ctx.store.session() as session:
        record = await tokens_repo.get_token(session, token_uid=token_uid)
        if record.team_uid != team_uid:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such token in this team", token_uid=token_uid)
        own = record.principal_type is PrincipalType.USER and record.principal_uid == caller.principal_uid
        if not own:
            require(caller, Action.MANAGE_TOKENS, team_uid)
        await tokens_repo.revoke_token(session, token_uid=token_uid)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="token.revoke",
                                      target=token_uid, team_uid=team_uid,
                                      before={"name": record.name, "principal_uid": record.principal_uid})
    ctx.forget_cached_callers()
    # Runs do not remember which token started them, so revoking any of a principal's tokens in the team
    # stops the runs that principal started there: a leaked token must not keep a run going.
    await ctx.access_withdrawn(team_uid, record.principal_uid, "a token of the principal who started it was"
                               " revoked")
