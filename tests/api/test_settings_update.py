"""PATCH /teams/{team}/settings through a real server: the update derived from the settings' declarations
keeps the rules the hand-written one had (null clears an optional setting, leaves a required one, empties a
set; "" removes the webhook; account ids are checked by position; bounds and unknown names answer 400)."""

from __future__ import annotations

from support.admin_cast import Cast


def test_settings_update_keeps_its_null_empty_and_validation_rules(cast: Cast) -> None:
    with cast.client(cast.admin) as admin:
        path = f"/teams/{cast.alpha}/settings"
        before = admin.get(path).json()
        assert before["alert_interval_seconds"] == 3600 and before["allowed_aws_accounts"] == []

        changed = admin.patch(path, json={"allowed_aws_accounts": ["210987654321", "123456789012"],
                                          "max_token_lifetime_days": 30, "degraded_runs_fail": True,
                                          "monthly_ai_credits": 77})
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert body["allowed_aws_accounts"] == ["123456789012", "210987654321"]
        assert (body["max_token_lifetime_days"], body["degraded_runs_fail"], body["monthly_ai_credits"]) == (
            30, True, 77)

        nulls = admin.patch(path, json={"max_token_lifetime_days": None, "degraded_runs_fail": None,
                                        "monthly_ai_credits": None, "alert_webhook_url": ""}).json()
        assert nulls["max_token_lifetime_days"] is None  # optional: cleared
        assert nulls["degraded_runs_fail"] is True and nulls["monthly_ai_credits"] == 77  # required: left
        assert nulls["alert_webhook_url"] is None
        assert nulls["allowed_aws_accounts"] == ["123456789012", "210987654321"]  # not named: left

        emptied = admin.patch(path, json={"allowed_aws_accounts": None}).json()
        assert emptied["allowed_aws_accounts"] == []  # null empties a set

        bad = admin.patch(path, json={"allowed_aws_accounts": ["123456789012", "12345"]})
        assert bad.status_code == 400 and "invalid_request" in bad.text, bad.text
        assert "allowed_aws_accounts[1]" in bad.text and "12-digit" in bad.text

        too_long = admin.patch(path, json={"alert_interval_seconds": 59})
        assert too_long.status_code == 400 and "greater than or equal to 60" in too_long.text
        unknown = admin.patch(path, json={"no_such_setting": True})
        assert unknown.status_code == 400 and "no_such_setting" in unknown.text
        assert admin.get(path).json()["alert_interval_seconds"] == 3600


def test_a_webhook_urls_secret_path_reaches_neither_the_settings_view_nor_the_audit_log(cast: Cast) -> None:
    """The webhook's path is its secret (Slack's are): the audit entry of a settings change records the
    same redacted form as the view, not the URL (it used to record the whole URL in before/after)."""
    secret = "T0001/B0002/s3cretWebhookPath"
    with cast.client(cast.admin) as admin:
        path = f"/teams/{cast.alpha}/settings"
        saved = admin.patch(path, json={"alert_webhook_url": f"https://93.184.215.14/{secret}"})
        assert saved.status_code == 200, saved.text
        assert saved.json()["alert_webhook_url"] == "https://93.184.215.14/…"
        assert admin.patch(path, json={"alert_interval_seconds": 120}).status_code == 200
    with cast.client(cast.operator) as op:
        audit = op.get(f"/teams/{cast.alpha}/audit")
        assert audit.status_code == 200 and "settings.update" in audit.text
        assert "s3cretWebhookPath" not in audit.text and "https://93.184.215.14/…" in audit.text
