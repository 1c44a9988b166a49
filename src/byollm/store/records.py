"""Frozen values the repositories return where ``policy.types`` has no matching domain type.

Why not return ORM objects: a row object is bound to a session and lazily loads; these values can be
cached, compared, passed to the planner or rendered by the API after the session is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from byollm.policy.types import Agent, Role

__all__ = [
    "AgentRecord",
    "AuditEntry",
    "Membership",
    "PrincipalType",
    "SecretInfo",
    "Team",
    "TokenRecord",
    "User",
]


class PrincipalType(StrEnum):
    """Who a token authenticates: a person, or a named agent (a service account)."""

    USER = "user"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class User:
    uid: str
    email: str
    display_name: str
    is_operator: bool
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class Team:
    """A team's identity; its policy, settings and host config come from ``get_team_policy``."""

    uid: str
    name: str
    created_at: datetime
    policy_version: int


@dataclass(frozen=True, slots=True)
class Membership:
    team_uid: str
    user_uid: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A named agent as stored: the domain ``Agent`` plus its team and lifecycle times."""

    uid: str
    team_uid: str
    name: str
    role_arn_override: str | None
    default_model: str | None
    tools: tuple[str, ...]
    created_at: datetime
    deleted_at: datetime | None = None

    @property
    def agent(self) -> Agent:
        return Agent(
            uid=self.uid,
            name=self.name,
            role_arn_override=self.role_arn_override,
            default_model=self.default_model,
            tools=self.tools,
        )

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token without its hash. ``principal_disabled`` is true when the user is disabled or
    the agent deleted, so the hot-path lookup answers "may this token act?" in one query."""

    uid: str
    principal_type: PrincipalType
    principal_uid: str
    team_uid: str | None
    name: str
    display_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    principal_disabled: bool = False

    def is_active(self, now: datetime) -> bool:
        """Not revoked, not expired at ``now``, and its principal still exists and is enabled."""
        if self.revoked_at is not None or self.principal_disabled:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    team_uid: str | None
    actor_uid: str
    action: str
    target: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A secret's metadata; the value is only returned by ``get_secret``."""

    name: str
    kek_id: str
    created_at: datetime
    updated_at: datetime
