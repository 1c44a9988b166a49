"""Create the first operator on a fresh installation, straight in the database.

Why not over the API: no token exists yet. Whoever can run this has the server's database and data
directory, which is the same trust an operator has anyway. It refuses to run twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from byollm.control.tokens import new_token
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import validate
from byollm.policy.types import Role, TeamSettings
from byollm.settings import Settings
from byollm.store import Store
from byollm.store import audit as audit_repo
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store import users as users_repo
from byollm.store.migrate import upgrade
from byollm.store.records import PrincipalType

__all__ = ["BootstrapResult", "bootstrap_operator"]


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    user_uid: str
    token: str
    team_uid: str | None

    def __repr__(self) -> str:
        return f"BootstrapResult(user_uid={self.user_uid!r}, team_uid={self.team_uid!r})"


async def bootstrap_operator(
    settings: Settings, *, email: str, display_name: str | None = None, team_name: str | None = None
) -> BootstrapResult:
    """Migrate, create the operator (and optionally a first team they administer) and an instance token."""
    try:
        email = validate.validate_email(email)
        display_name = validate.validate_label(display_name, field="display_name", allow_empty=True)
        team_name = validate.validate_label(team_name, field="team", allow_empty=True) or None
    except validate.InvalidValue as exc:
        raise exc.to_error() from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings)
    generated = new_token()
    async with Store.from_settings(settings) as store, store.session() as session:
        if await users_repo.count_users(session, operators_only=True):
            raise ByollmError(ErrorClass.CONFLICT, "this installation already has an operator;"
                              " use an operator token (`byollm admin teams create`, `byollm admin tokens issue`)")
        user = await users_repo.create_user(session, email=email, display_name=display_name or "", is_operator=True)
        team_uid = None
        if team_name:
            team = await teams_repo.create_team(session, name=team_name, settings=TeamSettings(
                monthly_ai_credits=settings.new_team_ai_credits, platform_credits=settings.new_team_platform_credits,
                compute_credits=settings.new_team_compute_credits))
            await teams_repo.set_member_role(session, team_uid=team.uid, user_uid=user.uid, role=Role.ADMIN)
            team_uid = team.uid
        await tokens_repo.create_token(session, principal_type=PrincipalType.USER, principal_uid=user.uid,
                                       token_hash=generated.sha256, display_prefix=generated.display_prefix,
                                       name="bootstrap")
        await audit_repo.append_audit(session, actor_uid=user.uid, action="operator.bootstrap", target=user.uid,
                                      team_uid=team_uid, after={"email": user.email, "team": team_name})
    return BootstrapResult(user_uid=user.uid, token=generated.value, team_uid=team_uid)
