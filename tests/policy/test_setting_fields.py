"""A team setting is declared once, as a ``TeamSettings`` field; every other layer is derived from it.

The test below declares a setting that does not exist in byollm, in a subclass, and shows that the admin
API's schema (with its bounds and messages), the control plane's view (with redaction) and the store's
writer and reader all carry it without a line written for it anywhere else.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest

from byollm.api.admin_schemas import SettingsUpdate, settings_update_model
from byollm.control.views import SettingsView, settings_view, settings_view_class
from byollm.policy.setting_fields import setting, setting_specs, settings_from_values, settings_to_values
from byollm.policy.types import TeamSettings
from byollm.store.policy import apply_settings


@dataclasses.dataclass(frozen=True, slots=True)
class WithNewSettings(TeamSettings):
    review_quota: int = setting(5, ge=1, le=10, help="Reviews a member may start each day.")
    report_url: str | None = setting(None, max_length=100, url=True, secret=True,
                                     help="Where daily reports go; its path is a secret.")
    reviewers: frozenset[str] = setting(frozenset(), max_length=3, help="Who reviews.")


def test_a_new_setting_reaches_the_schema_the_view_and_the_store_from_its_declaration_alone() -> None:
    update = settings_update_model(WithNewSettings, name="ExtendedUpdate")
    assert update(review_quota=7, reviewers=["a", "b"]).model_dump(exclude_unset=True) == {
        "review_quota": 7, "reviewers": ["a", "b"]}
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 10"):
        update(review_quota=11)
    with pytest.raises(pydantic.ValidationError, match="at most 3 items"):
        update(reviewers=["a", "b", "c", "d"])
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        update(not_a_setting=True)
    properties = update.model_json_schema()["properties"]
    assert {"review_quota", "report_url", "reviewers", "byok_allowed"} <= set(properties)

    view_cls = settings_view_class(WithNewSettings, name="ExtendedView")
    defaults = view_cls(**{s.name: None for s in setting_specs(WithNewSettings) if s.view_required})
    assert (defaults.review_quota, defaults.report_url, defaults.reviewers) == (5, None, [])
    value = WithNewSettings(review_quota=3, report_url="https://reports.example/secret-path",
                            reviewers=frozenset({"zed", "amy"}))
    view = settings_view(value, view_cls)
    assert (view.review_quota, view.reviewers) == (3, ["amy", "zed"])
    assert view.report_url == "https://reports.example/…"  # secret: scheme and host only

    row = SimpleNamespace()
    apply_settings(row, value)  # type: ignore[arg-type]  # the store's writer, given any settings value
    assert (row.review_quota, row.report_url, row.reviewers) == (3, "https://reports.example/secret-path",
                                                                 ["amy", "zed"])
    assert settings_from_values(WithNewSettings, vars(row)) == value  # and its reader


def test_the_derived_update_schema_and_view_are_the_settings_in_declaration_order() -> None:
    names = [spec.name for spec in setting_specs(TeamSettings)]
    assert list(SettingsUpdate.model_fields) == names
    assert [f.name for f in dataclasses.fields(SettingsView)] == names  # type: ignore[arg-type]
    assert names[:3] == ["byok_allowed", "long_term_keys_allowed", "retain_request_content"]


def test_every_secret_setting_is_redacted_in_the_view() -> None:
    secrets = [spec for spec in setting_specs(TeamSettings) if spec.secret]
    assert [s.name for s in secrets] == ["alert_webhook_url"]
    value = dataclasses.replace(TeamSettings(), **{s.name: "https://hooks.example/T000/B000/XXXX" for s in secrets})
    view = settings_view(value)
    for spec in secrets:
        assert "XXXX" not in str(getattr(view, spec.name))


def test_a_null_in_the_store_for_a_required_setting_reads_as_its_default() -> None:
    """Rows older than a column hold NULL; the hand-written reader defaulted only two settings this way
    (``credentialless_direct_allowed`` read back as None)."""
    stored: dict[str, Any] = {spec.name: None for spec in setting_specs(TeamSettings)}
    assert settings_from_values(TeamSettings, stored) == TeamSettings()
    assert settings_from_values(TeamSettings, settings_to_values(TeamSettings(
        allowed_aws_accounts=frozenset({"123456789012"}), max_token_lifetime_days=9))) == TeamSettings(
        allowed_aws_accounts=frozenset({"123456789012"}), max_token_lifetime_days=9)


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Undeclared(TeamSettings):
        sneaky: bool = False

    with pytest.raises(TypeError, match="sneaky is not declared with setting"):
        setting_specs(Undeclared)
