"""Every declared team setting is a ``teams`` column of the same name and default, and every column of
``teams`` is either a setting or one of the few that belong to the model policy or Bedrock host. The
columns and their migrations stay written out (a migration is history); ``test_migrate`` holds migrations
equal to the models, this holds the models equal to the settings."""

from __future__ import annotations

from byollm.policy.setting_fields import setting_specs
from byollm.policy.types import TeamSettings
from byollm.store import tables as t

NOT_SETTINGS = {
    "uid", "name", "created_at", "policy_version",  # the team itself
    "direct_api_disabled", "fallback_order", "model_aliases",  # model policy
    "bedrock_region", "bedrock_endpoint_url", "bedrock_role_arn",  # Bedrock host
    "validated_permissions",  # doctor's record
}


def test_every_setting_has_a_column_and_every_column_is_a_setting_or_named_here() -> None:
    columns = {c.name: c for c in t.Team.__table__.columns}
    settings = {spec.name: spec for spec in setting_specs(TeamSettings)}
    assert set(columns) - NOT_SETTINGS == set(settings)
    for name, spec in settings.items():
        column = columns[name]
        assert column.nullable == spec.nullable, name
        if column.default is not None:
            default = column.default.arg
            default = default(None) if callable(default) else default
            assert default == spec.to_wire(spec.default), name
        else:
            assert spec.default is None, name
