"""Who may do what in the control plane: one pure decision function over a ``Caller``.

Rules, in one place so every endpoint and CLI command agrees:

- the operator (created by ``byollm admin bootstrap``) may create teams (creating one makes them its admin)
  and set instance-wide settings such as the direct providers' API keys;
- a team's admins manage everything in it: policy, settings, host config, members, agents, tokens, audit;
- a team's members read its policy, settings and agents, and manage their own tokens;
- a named agent's token is for inference and runs only, never for the control plane;
- nobody sees another team: a caller outside the team gets ``not_found``, not ``forbidden``, so team UIDs
  cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Role

__all__ = ["Action", "Caller", "PrincipalKind", "require"]


class PrincipalKind(StrEnum):
    USER = "user"
    AGENT = "agent"


class Action(StrEnum):
    CREATE_TEAM = "create_team"
    OPERATE = "operate"  # instance-wide settings such as the direct providers' API keys
    READ_TEAM = "read_team"  # policy, settings, host config, agents, catalog view
    MANAGE_TEAM = "manage_team"  # change policy, settings, host config, agents
    MANAGE_MEMBERS = "manage_members"  # list, invite, change roles, remove
    MANAGE_TOKENS = "manage_tokens"  # issue or revoke tokens for others (members, agents)
    OWN_TOKENS = "own_tokens"  # issue, list and revoke one's own tokens
    READ_AUDIT = "read_audit"
    READ_USAGE = "read_usage"


_MEMBER_ACTIONS = frozenset({Action.READ_TEAM, Action.OWN_TOKENS})
_OPERATOR_ACTIONS = frozenset({Action.CREATE_TEAM, Action.OPERATE})
_ADMIN_ACTIONS = frozenset(Action) - _OPERATOR_ACTIONS


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a request, with the teams it can act in.

    ``token_team_uid`` is set when the token was issued inside one team: such a token acts in that team only,
    whatever else its user belongs to.
    """

    principal_uid: str
    kind: PrincipalKind
    is_operator: bool = False
    memberships: Mapping[str, Role] = field(default_factory=lambda: MappingProxyType({}))
    token_team_uid: str | None = None
    token_uid: str | None = None

    def role_in(self, team_uid: str) -> Role | None:
        if self.kind is not PrincipalKind.USER:
            return None
        if self.token_team_uid is not None and self.token_team_uid != team_uid:
            return None
        return self.memberships.get(team_uid)

    def visible_teams(self) -> list[str]:
        return sorted(t for t in self.memberships if self.role_in(t) is not None)


def require(caller: Caller, action: Action, team_uid: str | None = None) -> None:
    """Raise ``not_found`` for teams the caller cannot see and ``forbidden`` for actions its role lacks."""
    if action in _OPERATOR_ACTIONS:
        if caller.kind is PrincipalKind.USER and caller.is_operator and caller.token_team_uid is None:
            return
        raise ByollmError(ErrorClass.FORBIDDEN,
                          f"only the operator, with an instance-wide token, can {action.value.replace('_', ' ')}")
    if team_uid is None:
        raise ValueError(f"{action} needs a team")
    if caller.kind is PrincipalKind.AGENT:
        raise ByollmError(ErrorClass.FORBIDDEN, "agent tokens cannot use the control plane")
    role = caller.role_in(team_uid)
    if role is None:
        raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=team_uid)
    allowed = _ADMIN_ACTIONS if role is Role.ADMIN else _MEMBER_ACTIONS
    if action not in allowed:
        raise ByollmError(ErrorClass.FORBIDDEN, f"the {role.value} role cannot {action.value.replace('_', ' ')}")
