"""Repository behaviour, run identically on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from sqlalchemy import select

from byollm.errors import ErrorClass
from byollm.policy.ids import is_uid
from byollm.policy.types import BedrockHostConfig, ModelPolicy, ModelRouting, Role, TeamSettings
from byollm.store import ConflictError, NotFoundError, Store
from byollm.store import tables as t
from byollm.store.agents import create_agent, delete_agent, get_agent, list_agents, update_agent
from byollm.store.audit import append_audit, list_audit
from byollm.store.policy import (
    get_policy_version,
    get_team_policy,
    policy_versions,
    remove_model_routing,
    set_bedrock_host,
    set_model_policy,
    set_model_routing,
    set_team_settings,
)
from byollm.store.records import PrincipalType
from byollm.store.teams import (
    create_team,
    find_membership,
    list_memberships,
    list_teams,
    remove_member,
    set_member_role,
)
from byollm.store.tokens import (
    TokenUsageBuffer,
    create_token,
    find_token_by_hash,
    list_tokens,
    mark_tokens_used,
    revoke_token,
)
from byollm.store.uids import issue_uid
from byollm.store.users import count_users, create_user, find_user_by_email, get_user, set_user_disabled

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
H1 = "1" * 64
H2 = "2" * 64


# --- users, UIDs, constraint mapping ------------------------------------------------------------------


async def test_users_create_get_and_unique_email(store: Store) -> None:
    async with store.session() as s:
        user = await create_user(s, email=" Ada@Example.COM ", display_name="Ada", now=T0)
    assert is_uid(user.uid)
    assert user.email == "ada@example.com"
    assert user.created_at == T0
    async with store.session(readonly=True) as s:
        assert await get_user(s, uid=user.uid) == user
        assert await find_user_by_email(s, email="ADA@example.com") == user
        assert await count_users(s) == 1
    with pytest.raises(ConflictError) as info:
        async with store.session() as s:
            await create_user(s, email="ada@EXAMPLE.com")
    assert info.value.error_class is ErrorClass.CONFLICT
    with pytest.raises(NotFoundError):
        async with store.session() as s:
            await get_user(s, uid="x" * 22)


async def test_driver_unique_violation_becomes_conflict_and_rolls_back(store: Store) -> None:
    async with store.session() as s:
        await create_team(s, name="ml")

    async def duplicate_team_bypassing_the_repository() -> None:
        async with store.session() as s:
            await create_user(s, email="kept-out@example.com")
            s.add(t.Team(uid="A" * 22, name="ml", created_at=T0, fallback_order=[], allowed_aws_accounts=[]))
            await s.flush()

    with pytest.raises(ConflictError, match="already exists") as info:
        await duplicate_team_bypassing_the_repository()
    assert "teams" in str(info.value.context["constraint"])
    async with store.session(readonly=True) as s:
        assert await find_user_by_email(s, email="kept-out@example.com") is None  # whole scope rolled back


async def test_driver_foreign_key_violation_becomes_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="referenced row"):
        async with store.session() as s:
            s.add(t.Membership(team_uid="A" * 22, user_uid="B" * 22, role="member", created_at=T0))


async def test_uids_are_never_reused(store: Store) -> None:
    draws = iter(["D" * 22, "D" * 22, "E" * 22])
    async with store.session() as s:
        first = await issue_uid(s, kind="user", generate=lambda: next(draws))
        second = await issue_uid(s, kind="user", generate=lambda: next(draws))
    assert (first, second) == ("D" * 22, "E" * 22)

    async with store.session() as s:
        user = await create_user(s, email="gone@example.com")
    async with store.session() as s:  # even after the row is deleted outright, its UID stays issued
        await s.delete(await s.get(t.User, user.uid))
    draws2 = iter([user.uid, "F" * 22])
    async with store.session() as s:
        assert await issue_uid(s, kind="user", generate=lambda: next(draws2)) == "F" * 22
        kinds = dict(tuple(r) for r in await s.execute(select(t.IssuedUid.uid, t.IssuedUid.kind)))
    assert kinds[user.uid] == "user"


async def test_timestamps_are_aware_utc_and_naive_ones_are_refused(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    async with store.session() as s:
        user = await create_user(s, email="tz@example.com", now=T0.astimezone(plus2))
    async with store.session(readonly=True) as s:
        again = await get_user(s, uid=user.uid)
    assert again.created_at == T0
    assert again.created_at.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        async with store.session() as s:
            await create_user(s, email="naive@example.com", now=datetime(2026, 1, 1))


# --- teams and memberships -------------------------------------------------------------------------


async def test_memberships_roles_and_team_visibility(store: Store) -> None:
    async with store.session() as s:
        ada = await create_user(s, email="ada@example.com")
        bob = await create_user(s, email="bob@example.com")
        ml = await create_team(s, name="ml")
        web = await create_team(s, name="web")
        await set_member_role(s, team_uid=ml.uid, user_uid=ada.uid, role=Role.ADMIN)
        await set_member_role(s, team_uid=ml.uid, user_uid=bob.uid, role=Role.MEMBER)
        await set_member_role(s, team_uid=web.uid, user_uid=bob.uid, role=Role.ADMIN)
    async with store.session() as s:
        promoted = await set_member_role(s, team_uid=ml.uid, user_uid=bob.uid, role=Role.ADMIN)
        assert promoted.role is Role.ADMIN
        assert [team.name for team in await list_teams(s, user_uid=ada.uid)] == ["ml"]
        assert [team.name for team in await list_teams(s, user_uid=bob.uid)] == ["ml", "web"]
        assert len(await list_memberships(s, team_uid=ml.uid)) == 2
        await remove_member(s, team_uid=ml.uid, user_uid=bob.uid)
        assert await find_membership(s, team_uid=ml.uid, user_uid=bob.uid) is None
        assert (await find_membership(s, team_uid=ml.uid, user_uid=ada.uid)).role is Role.ADMIN  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        async with store.session() as s:
            await set_member_role(s, team_uid=ml.uid, user_uid="Z" * 22, role=Role.MEMBER)
    with pytest.raises(ConflictError):
        async with store.session() as s:
            await create_team(s, name="ml")


# --- policy ------------------------------------------------------------------------------------------


async def test_policy_round_trip_bumps_the_version_on_every_change(store: Store) -> None:
    async with store.session() as s:
        team = await create_team(s, name="ml")
    assert team.policy_version == 1
    routes = {
        "claude-sonnet-4-5": ModelRouting("claude-sonnet-4-5", bedrock=True, direct=True),
        "claude-opus-4-1": ModelRouting(
            "claude-opus-4-1",
            bedrock=True,
            inference_profile="arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
        ),
        "gpt-4o": ModelRouting("gpt-4o", direct=False),
    }
    models = ModelPolicy(
        routes=MappingProxyType(routes),
        direct_api_disabled=True,
        fallback_order=("claude-opus-4-1", "gpt-4o"),
    )
    settings = TeamSettings(
        byok_allowed=True,
        long_term_keys_allowed=True,
        retain_request_content=True,
        transcript_retention_days=7,
        monthly_ai_credits=10_000_000_000,
        platform_credits=5,
        compute_credits=6,
        allowed_aws_accounts=frozenset({"123456789012", "210987654321"}),
        max_token_lifetime_days=90,
    )
    host = BedrockHostConfig(
        region="eu-west-1",
        endpoint_url="https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com",
        role_arn="arn:aws:iam::123456789012:role/byollm",
    )
    async with store.session() as s:
        assert await set_model_policy(s, team_uid=team.uid, policy=models) == 2
        assert await set_team_settings(s, team_uid=team.uid, settings=settings) == 3
        assert await set_bedrock_host(s, team_uid=team.uid, config=host) == 4
        agent = await create_agent(
            s,
            team_uid=team.uid,
            name="triage",
            role_arn_override="arn:aws:iam::123456789012:role/triage",
            default_model="claude-sonnet-4-5",
            tools=("search", "shell"),
        )
    async with store.session(readonly=True) as s:
        assert await get_policy_version(s, team_uid=team.uid) == 5
        policy = await get_team_policy(s, team_uid=team.uid)
    assert policy.team_uid == team.uid
    assert dict(policy.models.routes) == routes
    assert policy.models.direct_api_disabled
    assert policy.models.fallback_order == ("claude-opus-4-1", "gpt-4o")
    assert policy.settings == settings
    assert policy.bedrock == host
    assert dict(policy.agents) == {agent.uid: agent.agent}

    async with store.session() as s:
        assert await set_model_routing(s, team_uid=team.uid, routing=ModelRouting("gpt-4o", direct=True)) == 6
        assert await remove_model_routing(s, team_uid=team.uid, model="claude-opus-4-1") == 7
        await update_agent(s, team_uid=team.uid, agent=dataclasses.replace(agent.agent, default_model=None))
        await delete_agent(s, team_uid=team.uid, agent_uid=agent.uid)
        assert (await policy_versions(s))[team.uid] == 9
        policy = await get_team_policy(s, team_uid=team.uid)
    assert set(policy.models.routes) == {"claude-sonnet-4-5", "gpt-4o"}
    assert policy.models.routes["gpt-4o"].direct
    assert dict(policy.agents) == {}

    async with store.session(readonly=True) as s:
        fresh = await get_team_policy(s, team_uid=(await create_team(s, name="fresh")).uid)
    assert fresh.settings == TeamSettings()
    assert fresh.bedrock == BedrockHostConfig()
    assert dict(fresh.models.routes) == {}
    assert not fresh.models.direct_api_disabled


async def test_agents_unique_live_names_and_team_scoping(store: Store) -> None:
    async with store.session() as s:
        ml = await create_team(s, name="ml")
        web = await create_team(s, name="web")
        bot = await create_agent(s, team_uid=ml.uid, name="bot")
        await create_agent(s, team_uid=web.uid, name="bot")  # another team may use the name
    with pytest.raises(ConflictError):
        async with store.session() as s:
            await create_agent(s, team_uid=ml.uid, name="bot")
    with pytest.raises(NotFoundError):
        async with store.session() as s:
            await get_agent(s, team_uid=web.uid, agent_uid=bot.uid)
    async with store.session() as s:
        await delete_agent(s, team_uid=ml.uid, agent_uid=bot.uid)
        again = await create_agent(s, team_uid=ml.uid, name="bot")
        assert again.uid != bot.uid
        assert [a.uid for a in await list_agents(s, team_uid=ml.uid)] == [again.uid]
        assert len(await list_agents(s, team_uid=ml.uid, include_deleted=True)) == 2
        assert (await get_agent(s, team_uid=ml.uid, agent_uid=bot.uid, include_deleted=True)).deleted


# --- tokens ------------------------------------------------------------------------------------------


async def test_tokens_lookup_expiry_revocation_and_last_used(store: Store) -> None:
    async with store.session() as s:
        ada = await create_user(s, email="ada@example.com")
        team = await create_team(s, name="ml")
        token = await create_token(
            s,
            principal_type=PrincipalType.USER,
            principal_uid=ada.uid,
            team_uid=team.uid,
            name="laptop",
            token_hash=H1,
            display_prefix="byo_ab12",
            expires_at=T0 + timedelta(days=30),
            now=T0,
        )
    async with store.session(readonly=True) as s:
        found = await find_token_by_hash(s, token_hash=H1)
        assert await find_token_by_hash(s, token_hash=H2) is None
    assert found == token
    assert found.display_prefix == "byo_ab12"
    assert found.team_uid == team.uid
    assert found.is_active(T0 + timedelta(days=1))
    assert not found.is_active(T0 + timedelta(days=30))

    buffer = TokenUsageBuffer()
    buffer.note(token.uid, T0 + timedelta(hours=2))
    buffer.note(token.uid, T0 + timedelta(hours=1))
    async with store.session() as s:
        assert await buffer.flush(s) == 1
        await mark_tokens_used(s, last_used={token.uid: T0 + timedelta(minutes=1)})  # never goes back
        assert (await find_token_by_hash(s, token_hash=H1)).last_used_at == T0 + timedelta(hours=2)  # type: ignore[union-attr]

    with pytest.raises(ConflictError):
        async with store.session() as s:
            await create_token(
                s, principal_type=PrincipalType.USER, principal_uid=ada.uid, token_hash=H1, display_prefix="x"
            )
    with pytest.raises(ValueError, match="hex SHA-256"):
        async with store.session() as s:
            await create_token(
                s,
                principal_type=PrincipalType.USER,
                principal_uid=ada.uid,
                token_hash="nothex",
                display_prefix="x",
            )

    async with store.session() as s:
        revoked = await revoke_token(s, token_uid=token.uid, now=T0 + timedelta(days=2))
        again = await revoke_token(s, token_uid=token.uid, now=T0 + timedelta(days=3))
        assert await list_tokens(s, principal_type=PrincipalType.USER, principal_uid=ada.uid) == []
        assert len(await list_tokens(s, principal_uid=ada.uid, include_revoked=True)) == 1
    assert revoked.revoked_at == again.revoked_at == T0 + timedelta(days=2)
    assert not revoked.is_active(T0 + timedelta(days=1))


async def test_tokens_stop_when_the_principal_goes(store: Store) -> None:
    async with store.session() as s:
        ada = await create_user(s, email="ada@example.com")
        team = await create_team(s, name="ml")
        bot = await create_agent(s, team_uid=team.uid, name="bot")
        await create_token(
            s, principal_type=PrincipalType.USER, principal_uid=ada.uid, token_hash=H1, display_prefix="u"
        )
        agent_token = await create_token(
            s, principal_type=PrincipalType.AGENT, principal_uid=bot.uid, token_hash=H2, display_prefix="a"
        )
    assert agent_token.team_uid == team.uid  # an agent's token is always scoped to its team
    async with store.session() as s:
        await set_user_disabled(s, uid=ada.uid, disabled=True)
        await delete_agent(s, team_uid=team.uid, agent_uid=bot.uid)
    async with store.session(readonly=True) as s:
        user_token = await find_token_by_hash(s, token_hash=H1)
        dead = await find_token_by_hash(s, token_hash=H2)
    assert user_token is not None
    assert user_token.principal_disabled
    assert not user_token.is_active(T0)
    assert dead is not None
    assert dead.revoked_at is not None
    assert dead.principal_disabled
    with pytest.raises(NotFoundError):
        async with store.session() as s:
            await create_token(
                s,
                principal_type=PrincipalType.AGENT,
                principal_uid=bot.uid,
                token_hash="3" * 64,
                display_prefix="a",
            )


# --- audit -------------------------------------------------------------------------------------------


async def test_audit_append_and_list_with_filters(store: Store) -> None:
    async with store.session() as s:
        ml = await create_team(s, name="ml")
        await append_audit(s, actor_uid="op", action="team.create", target=ml.uid, after={"name": "ml"}, at=T0)
        await append_audit(
            s,
            actor_uid="op",
            action="team.settings",
            team_uid=ml.uid,
            target=ml.uid,
            before=TeamSettings(),
            after=TeamSettings(byok_allowed=True, allowed_aws_accounts=frozenset({"1"})),
            at=T0 + timedelta(hours=1),
        )
        await append_audit(s, actor_uid="op", action="x", team_uid="other", at=T0 + timedelta(hours=2))
    async with store.session(readonly=True) as s:
        team_entries = await list_audit(s, team_uid=ml.uid)
        recent = await list_audit(s, since=T0 + timedelta(minutes=30))
        everything = await list_audit(s)
        page = await list_audit(s, before_id=everything[0].id, limit=1)
    assert [e.action for e in team_entries] == ["team.settings"]
    assert team_entries[0].after is not None
    assert team_entries[0].after["byok_allowed"] is True
    assert team_entries[0].after["allowed_aws_accounts"] == ["1"]
    assert team_entries[0].at == T0 + timedelta(hours=1)
    assert [e.action for e in recent] == ["x", "team.settings"]
    assert [e.action for e in everything] == ["x", "team.settings", "team.create"]
    assert [e.action for e in page] == ["team.settings"]


async def test_audit_refuses_fields_that_may_hold_secrets(store: Store) -> None:
    with pytest.raises(ValueError, match=r"after\.token_hash"):
        async with store.session() as s:
            await append_audit(s, actor_uid="op", action="token.create", after={"token_hash": H1})


async def test_driver_errors_never_echo_bound_values(store: Store) -> None:
    """A unique violation on the token hash must not leak the hash through the error or its cause."""

    def token_row(uid: str) -> t.ApiToken:
        return t.ApiToken(
            uid=uid,
            principal_type="user",
            principal_uid="U" * 22,
            name="",
            token_hash=H1,
            display_prefix="p",
            created_at=T0,
        )

    async def insert_twice() -> None:
        async with store.session() as s:
            s.add(token_row("A" * 22))
            await s.flush()
            s.add(token_row("B" * 22))
            await s.flush()

    with pytest.raises(ConflictError) as info:
        await insert_twice()
    assert "token_hash" in str(info.value.context["constraint"])
    chain: BaseException | None = info.value
    while chain is not None:
        assert H1 not in str(chain)
        chain = chain.__cause__
