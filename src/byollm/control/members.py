"""A team's members: list, invite (a person new to byollm gets their first token), change role, remove; a
team always keeps one admin, and losing access clears the authentication cache and stops the member's runs."""

from __future__ import annotations

from typing import Any

from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext, invalid
from byollm.control.tokens_admin import new_token_in
from byollm.control.views import InvitedMember, IssuedToken, MemberView
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import validate
from byollm.policy.types import Role
from byollm.store import audit as audit_repo
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store import users as users_repo
from byollm.store.records import PrincipalType

__all__ = ["invite_member", "list_members", "remove_member", "set_member_role"]


async def list_members(ctx: ControlContext, caller: Caller, team_uid: str) -> list[MemberView]:
    require(caller, Action.MANAGE_MEMBERS, team_uid)
    async with ctx.store.session(readonly=True) as session:
        memberships = await teams_repo.list_memberships(session, team_uid=team_uid)
        users = {m.user_uid: await users_repo.get_user(session, uid=m.user_uid) for m in memberships}
    return sorted(
        (MemberView(user_uid=m.user_uid, email=users[m.user_uid].email,
                    display_name=users[m.user_uid].display_name, role=m.role.value) for m in memberships),
        key=lambda v: v.email,
    )


async def invite_member(ctx: ControlContext, caller: Caller, team_uid: str, *, email: str,
                        display_name: str | None, role: Role) -> InvitedMember:
    """Add ``email`` to the team. Someone byollm did not know yet also gets their first token, valid for the
    team's token lifetime and shown once; people byollm knows already keep using their own."""
    require(caller, Action.MANAGE_MEMBERS, team_uid)
    try:
        email = validate.validate_email(email)
        display_name = validate.validate_label(display_name, field="display_name", allow_empty=True)
    except validate.InvalidValue as exc:
        raise invalid(exc) from None
    issued: IssuedToken | None = None
    async with ctx.store.session() as session:
        user = await users_repo.find_user_by_email(session, email=email)
        new_person = user is None
        if user is None:
            user = await users_repo.create_user(session, email=email, display_name=display_name or "")
        if await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user.uid) is not None:
            raise ByollmError(ErrorClass.CONFLICT, f"{user.email} is already a member", user_uid=user.uid)
        await teams_repo.set_member_role(session, team_uid=team_uid, user_uid=user.uid, role=role)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.invite",
                                      target=user.uid, team_uid=team_uid,
                                      after={"email": user.email, "role": role.value})
        if new_person:
            issued = await new_token_in(session, caller, team_uid, name="invitation",
                                        principal_type=PrincipalType.USER, principal_uid=user.uid,
                                        expires_in_days=None)
    ctx.forget_cached_callers()
    return InvitedMember(user_uid=user.uid, email=user.email, display_name=user.display_name, role=role.value,
                         first_token=issued)


async def _admin_count(session: Any, team_uid: str) -> int:
    return sum(m.role is Role.ADMIN for m in await teams_repo.list_memberships(session, team_uid=team_uid))


async def set_member_role(ctx: ControlContext, caller: Caller, team_uid: str, user_uid: str,
                          role: Role) -> MemberView:
    require(caller, Action.MANAGE_MEMBERS, team_uid)
    async with ctx.store.session() as session:
        current = await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user_uid)
        if current is None:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=user_uid)
        if current.role is Role.ADMIN and role is not Role.ADMIN and await _admin_count(session, team_uid) < 2:
            raise ByollmError(ErrorClass.CONFLICT, "a team needs at least one admin; promote another first")
        await teams_repo.set_member_role(session, team_uid=team_uid, user_uid=user_uid, role=role)
        user = await users_repo.get_user(session, uid=user_uid)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.role",
                                      target=user_uid, team_uid=team_uid, before={"role": current.role.value},
                                      after={"role": role.value})
    ctx.forget_cached_callers()
    if current.role is Role.ADMIN and role is not Role.ADMIN:
        await ctx.access_withdrawn(team_uid, user_uid, "the member who started it was demoted")
    return MemberView(user_uid=user_uid, email=user.email, display_name=user.display_name, role=role.value)


async def remove_member(ctx: ControlContext, caller: Caller, team_uid: str, user_uid: str) -> None:
    require(caller, Action.MANAGE_MEMBERS, team_uid)
    async with ctx.store.session() as session:
        current = await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user_uid)
        if current is None:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=user_uid)
        if current.role is Role.ADMIN and await _admin_count(session, team_uid) < 2:
            raise ByollmError(ErrorClass.CONFLICT, "a team needs at least one admin; promote another first")
        await teams_repo.remove_member(session, team_uid=team_uid, user_uid=user_uid)
        for token in await tokens_repo.list_tokens(session, principal_type=PrincipalType.USER,
                                                   principal_uid=user_uid, team_uid=team_uid):
            await tokens_repo.revoke_token(session, token_uid=token.uid)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.remove",
                                      target=user_uid, team_uid=team_uid, before={"role": current.role.value})
    ctx.forget_cached_callers()
    await ctx.access_withdrawn(team_uid, user_uid, "the member who started it was removed from the team")
