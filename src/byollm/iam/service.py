"""The IAM setup help behind the admin API: authorise, look up the team, build the documents.

Team admins may print their team's trust and permissions policies (they are the ones who hand them to the
cloud admin); any signed-in user may print the OIDC provider facts, which are the same for every team.
"""

from __future__ import annotations

from byollm.catalog.types import Catalog
from byollm.control.authz import Action, Caller, PrincipalKind, require
from byollm.control.service import ControlService
from byollm.errors import ByollmError, ErrorClass
from byollm.iam.policies import (
    IamDocument,
    OutputFormat,
    PolicyForm,
    oidc_provider_document,
    permissions_policy_document,
    trust_policy_document,
)
from byollm.oidc.issuer import Issuer
from byollm.policy.types import Agent, TeamPolicy

__all__ = ["IamSetup"]


class IamSetup:
    def __init__(self, control: ControlService, catalog: Catalog, issuer: Issuer, *, session_seconds: int) -> None:
        self._control = control
        self._catalog = catalog
        self._issuer = issuer
        self._session_seconds = session_seconds

    async def _team(self, caller: Caller, team_uid: str) -> TeamPolicy:
        require(caller, Action.MANAGE_TEAM, team_uid)
        policy, _version = await self._control.team_policy(team_uid)
        return policy

    @staticmethod
    def _agent(policy: TeamPolicy, agent: str) -> Agent:
        found = policy.agents.get(agent) or next((a for a in policy.agents.values() if a.name == agent), None)
        if found is None:
            raise ByollmError(ErrorClass.NOT_FOUND, f"no agent {agent!r} in this team", agent=agent)
        return found

    async def oidc_provider(self, caller: Caller, fmt: OutputFormat) -> IamDocument:
        if caller.kind is not PrincipalKind.USER:
            raise ByollmError(ErrorClass.FORBIDDEN, "agent tokens cannot use the control plane")
        return oidc_provider_document(issuer_url=self._issuer.require_url(), audience=self._issuer.audience, fmt=fmt)

    async def trust_policy(self, caller: Caller, team_uid: str, fmt: OutputFormat, *, agent: str | None = None,
                           agent_strict: bool = False) -> IamDocument:
        policy = await self._team(caller, team_uid)
        found = self._agent(policy, agent) if agent else None
        role = (found.role_arn_override if found is not None else None) or policy.bedrock.role_arn
        return trust_policy_document(
            issuer_url=self._issuer.require_url(), audience=self._issuer.audience, team_uid=team_uid,
            role_arn=role, fmt=fmt, agent_uid=found.uid if found else None, agent_name=found.name if found else None,
            agent_strict=agent_strict, max_session_duration=max(3600, self._session_seconds),
        )

    async def permissions_policy(self, caller: Caller, team_uid: str, fmt: OutputFormat, *,
                                 agent: str | None = None,
                                 form: PolicyForm = PolicyForm.LEAST_PRIVILEGE) -> IamDocument:
        policy = await self._team(caller, team_uid)
        found = self._agent(policy, agent) if agent else None
        role = (found.role_arn_override if found is not None else None) or policy.bedrock.role_arn
        return permissions_policy_document(policy=policy, catalog=self._catalog, fmt=fmt, role_arn=role, form=form)
