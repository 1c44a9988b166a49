"""Validated inputs of the admin API. Outputs are the control plane's view dataclasses.

Only shape and bounds are checked here; meaning (is this a valid role ARN, an enabled model, a real
region?) is checked by the control service with the pure validators, so the CLI and the panel get the same
answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from byollm.policy.setting_fields import setting_specs
from byollm.policy.types import Role, TeamSettings

__all__ = [
    "AgentCreate",
    "AgentUpdate",
    "BedrockUpdate",
    "MemberInvite",
    "MemberUpdate",
    "ModelRoutingIn",
    "PolicyUpdate",
    "ProviderKeyIn",
    "SettingsUpdate",
    "TeamCreate",
    "TokenCreate",
    "settings_update_model",
]



class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamCreate(_In):
    name: str = Field(min_length=1, max_length=100)


class MemberInvite(_In):
    email: str = Field(max_length=254)  # its meaning is checked by the control service, for every caller
    display_name: str | None = Field(default=None, max_length=100)
    role: Role = Role.MEMBER


class MemberUpdate(_In):
    role: Role


class AgentCreate(_In):
    name: str = Field(min_length=1, max_length=100)
    role_arn_override: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, max_length=200)
    tools: list[str] = Field(default_factory=list, max_length=50)


class AgentUpdate(_In):
    """Fields left out stay as they are; an explicit ``null`` clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    role_arn_override: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, max_length=200)
    tools: list[str] | None = Field(default=None, max_length=50)


class ModelRoutingIn(_In):
    bedrock: bool = False
    inference_profile: str | None = Field(default=None, max_length=2048)
    direct: bool = False


class AliasIn(_In):
    """Requests for ``pattern`` (``*`` and ``?`` are wildcards) are served as the catalog model ``target``."""

    pattern: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)


class PolicyUpdate(_In):
    """Fields left out stay as they are. ``models`` replaces the routing of the models it names only;
    ``aliases`` replaces the whole alias list (first match wins)."""

    direct_api_disabled: bool | None = None
    fallback_order: list[str] | None = Field(default=None, max_length=50)
    models: dict[str, ModelRoutingIn] | None = None
    aliases: list[AliasIn] | None = Field(default=None, max_length=100)


def settings_update_model(settings_cls: type[Any], name: str = "SettingsUpdate") -> type[BaseModel]:
    """The input schema of a settings update, one optional field per declared setting with its bounds
    (``policy/setting_fields.py``): a field left out, or a ``null`` for a required setting, leaves it."""
    fields: dict[str, Any] = {}
    for spec in setting_specs(settings_cls):
        bounds: dict[str, Any] = {k: v for k, v in (("ge", spec.ge), ("le", spec.le), ("max_length", spec.max_length))
                  if v is not None}
        fields[spec.name] = (spec.wire_type | None, Field(default=None, **bounds))
    model: type[BaseModel] = create_model(name, __base__=_In, __module__=__name__, **fields)
    return model


if TYPE_CHECKING:
    class SettingsUpdate(_In):
        """What mypy sees of the derived schema."""
else:
    SettingsUpdate = settings_update_model(TeamSettings)


class BedrockUpdate(_In):
    region: str | None = Field(default=None, max_length=30)
    endpoint_url: str | None = Field(default=None, max_length=2048)
    role_arn: str | None = Field(default=None, max_length=2048)


class TokenCreate(_In):
    """Issue a token for yourself (default), for a member (admins) or for a named agent (admins)."""

    name: str = Field(min_length=1, max_length=100)
    user_uid: str | None = Field(default=None, max_length=40)
    agent_uid: str | None = Field(default=None, max_length=40)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ProviderKeyIn(_In):
    """The operator's API key for one direct provider; ``null`` removes it. Stored encrypted, never shown."""

    api_key: str | None = Field(default=None, max_length=4096)
