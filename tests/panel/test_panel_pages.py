"""Each team page's forms do what they say through the control plane and the runs service (over HTTP)."""

from __future__ import annotations

import re
import secrets

from byollm.settings import Settings
from panel.conftest import PanelClient
from support.admin_cast import Cast


def _api(cast: Cast, path: str) -> object:
    with cast.client(cast.operator) as op:
        r = op.get(f"/teams/{cast.alpha}{path}")
        assert r.status_code == 200, r.text
        return r.json()


def _agent(cast: Cast, name: str) -> dict:  # type: ignore[type-arg]
    agents = _api(cast, "/agents")
    assert isinstance(agents, list)
    return next(a for a in agents if a["name"] == name)


def test_agents_are_created_edited_and_deleted(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    base = f"/admin/{cast.alpha}/agents"
    arn = "arn:aws:iam::111122223333:role/agent-role"
    name = f"bot-{secrets.token_hex(3)}"
    r = panel.post(base, {"name": name, "role_mode": "custom", "role_arn": arn, "default_model": "claude-opus-4-7",
                          "tools": "shell"})
    assert r.status_code == 303
    agent = _agent(cast, name)
    assert (agent["role_arn_override"], agent["default_model"], agent["tools"]) == (arn, "claude-opus-4-7", ["shell"])
    page = panel.get(base).text
    assert f"Agent &#39;{name}&#39; created." in page and arn in page
    # back to the team default role: the override is cleared even though the ARN field still holds it
    panel.post(f"{base}/{agent['uid']}", {"name": name, "role_mode": "default", "role_arn": arn, "tools": ""})
    assert _agent(cast, name)["role_arn_override"] is None
    refused = panel.post(f"{base}/{agent['uid']}", {"name": name, "role_mode": "custom", "role_arn": "",
                                                    "tools": "shell, web"})
    assert refused.status_code == 400  # the page again, with what was typed and the error beside its field
    assert 'aria-invalid="true"' in refused.text and "paste the custom role" in refused.text
    assert 'value="shell, web"' in refused.text
    asked = panel.post(f"{base}/{agent['uid']}/delete", {})
    assert asked.status_code == 200 and "Please confirm" in asked.text and 'name="confirm" value="yes"' in asked.text
    assert any(a["name"] == name for a in _api(cast, "/agents"))  # type: ignore[attr-defined]
    panel.post(f"{base}/{agent['uid']}/delete", {"confirm": "yes"})
    assert all(a["name"] != name for a in _api(cast, "/agents"))  # type: ignore[attr-defined]


def test_members_are_invited_promoted_and_removed_and_tokens_revoked(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    base = f"/admin/{cast.alpha}/members"
    email = f"new-{secrets.token_hex(3)}@alpha.test"
    invited = panel.post(base, {"email": email, "display_name": "New", "role": "member"})
    assert invited.status_code == 200  # someone new to byollm: their first token, shown once
    first = invited.text.split('id="issued-token" readonly value="', 1)[1].split('"', 1)[0]
    assert first.startswith("byo_")
    members = _api(cast, "/members")
    assert isinstance(members, list)
    uid = next(m["user_uid"] for m in members if m["email"] == email)
    panel.post(f"{base}/{uid}/role", {"role": "admin"})
    assert any(m["email"] == email and m["role"] == "admin" for m in _api(cast, "/members"))  # type: ignore[attr-defined]
    refused = panel.post(f"/admin/{cast.alpha}/tokens", {"name": "laptop", "subject": f"user:{uid}"})
    assert refused.status_code == 403  # nobody issues a token for another person; the form comes back as typed
    assert "only for yourself or for one of the team" in refused.text and 'value="laptop"' in refused.text
    issued = panel.post(f"/admin/{cast.alpha}/tokens", {"name": "laptop", "subject": "self:", "expires_in_days": "7"})
    token_uid = re.search(r'/tokens/([A-Za-z0-9]+)/revoke"', issued.text)
    assert token_uid, "the new token is listed with a revoke button"
    tokens = _api(cast, "/tokens")
    assert isinstance(tokens, list)
    laptop = next(t for t in tokens if t["name"] == "laptop" and t["principal_uid"] == cast.admin_uid)
    revoke = f"/admin/{cast.alpha}/tokens/{laptop['uid']}/revoke"
    assert "Revoke token laptop" in panel.post(revoke, {}).text  # one click only asks
    assert not next(t for t in _api(cast, "/tokens") if t["uid"] == laptop["uid"])["revoked_at"]  # type: ignore[attr-defined]
    assert panel.post(revoke, {"confirm": "yes"}).status_code == 303
    assert next(t for t in _api(cast, "/tokens") if t["uid"] == laptop["uid"])["revoked_at"]  # type: ignore[attr-defined]
    assert "Remove New from the team?" in panel.post(f"{base}/{uid}/remove", {}).text
    assert any(m["email"] == email for m in _api(cast, "/members"))  # type: ignore[attr-defined]
    panel.post(f"{base}/{uid}/remove", {"confirm": "yes"})
    assert all(m["email"] != email for m in _api(cast, "/members"))  # type: ignore[attr-defined]
    assert "Member removed" in panel.get(base).text


def test_the_audit_log_lists_panel_changes(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    panel.post(f"/admin/{cast.alpha}/models/bedrock", {"region": "us-west-2"})
    page = panel.get(f"/admin/{cast.alpha}/audit").text
    assert "bedrock.update" in page and "us-west-2" in page
    assert "<td>alice@alpha.test</td>" in page  # who: named, not shown as a UID
    assert f"<code>{cast.admin_uid}</code>" not in page
    panel.post(f"/admin/{cast.alpha}/models/bedrock", {"region": "us-east-1"})


def test_runs_are_started_watched_steered_and_cancelled(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    with cast.client(cast.operator) as op:
        assert op.patch(f"/teams/{cast.alpha}/settings", json={"platform_credits": 100}).status_code == 200
    r = panel.post(f"/admin/{cast.alpha}/runs", {"prompt": "hello", "model": "gpt-5"})
    assert r.status_code == 303
    run_path = r.headers["location"]
    run_uid = run_path.rsplit("/", 1)[1]
    page = panel.get(run_path).text
    assert run_uid in page and "Prompt" in page and '{"text"' not in page  # readable, not raw JSON
    assert run_uid in panel.get(f"/admin/{cast.alpha}/runs").text
    steer = panel.post(f"{run_path}/steer", {"message": "be brief"})
    assert steer.status_code == 303
    assert panel.post(f"{run_path}/cancel", {}).status_code == 303
    with panel.http.stream("GET", f"{run_path}/events") as stream:  # the run has ended: the stream closes
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-frame-options"] == "DENY"
        body = stream.read().decode()
    assert "event: run" in body and '"kind":"steer"' in body and body.rstrip().endswith("data: {}")
    assert '"title":"Steering message"' in body and "be brief" in body
    assert '"kind":"cancel_requested"' in body


def test_validate_refuses_a_pasted_document_that_is_not_json(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    r = panel.post(f"/admin/{cast.alpha}/validate", {"trust_policy": "{not json"})
    assert r.status_code == 200
    assert "trust_policy: not valid JSON" in r.text and "{not json" in r.text


def test_static_files_are_served_and_nothing_else(cast: Cast, panel: PanelClient) -> None:
    css = panel.get("/admin/_static/panel.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert panel.get("/admin/_static/run-events.js").headers["content-type"].startswith("text/javascript")
    for name in ("..%2Froutes.py", "routes.py", ".hidden.css", "missing.css"):
        assert panel.get(f"/admin/_static/{name}").status_code == 404


def _row(page: str, model: str) -> str:
    match = re.search(rf'<tr data-model="{re.escape(model)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {model}"
    return match.group(1)


def test_models_page_shows_the_direct_switch_and_region_truthfully(cast: Cast, panel: PanelClient) -> None:
    """With every direct API disabled the per-model direct boxes are unticked and disabled (their saved
    choice kept), the fallback order lists only usable models, and a Bedrock model the region lacks is
    "not in this region", not "not on Bedrock"."""
    panel.sign_in(cast.admin)
    with cast.client(cast.operator) as op:
        assert op.patch(f"/teams/{cast.alpha}/bedrock", json={"region": "eu-north-1"}).status_code == 200
        assert op.patch(f"/teams/{cast.alpha}/policy", json={
            "models": {"gpt-5": {"direct": True}, "claude-sonnet-4-6": {"bedrock": True, "direct": True}},
            "fallback_order": ["gpt-5", "claude-sonnet-4-6"], "direct_api_disabled": True}).status_code == 200
    try:
        page = panel.get(f"/admin/{cast.alpha}/models").text
        opus41 = _row(page, "claude-opus-4-1")
        assert "not in this region (eu-north-1)" in opus41 and "not on Bedrock" not in opus41
        assert "not on Bedrock" in _row(page, "gpt-5")
        gpt = _row(page, "gpt-5")
        box = re.search(r'<input type="checkbox" class="direct-box"[^>]*>', gpt)
        assert box and "disabled" in box.group(0) and "checked" not in box.group(0)
        assert 'class="direct-kept" name="direct.gpt-5" value="on">' in gpt  # the saved choice rides along
        fallback = re.search(r'id="fallback_order" name="fallback_order" value="([^"]*)"', page)
        assert fallback and fallback.group(1) == "claude-sonnet-4-6"
        assert "Left out because they cannot be served" in page
        # saving the page as shown keeps gpt-5's direct choice for when direct models come back
        form = {"model": [m for m in ("gpt-5", "claude-sonnet-4-6")], "direct_api_disabled": "on",
                "direct.gpt-5": "on", "bedrock.claude-sonnet-4-6": "on", "direct.claude-sonnet-4-6": "on",
                "fallback_order": "claude-sonnet-4-6"}
        assert panel.post(f"/admin/{cast.alpha}/models/routing", form).status_code == 303
        policy = _api(cast, "/policy")
        assert isinstance(policy, dict)
        assert next(m for m in policy["models"] if m["model"] == "gpt-5")["direct"] is True
    finally:
        with cast.client(cast.operator) as op:
            op.patch(f"/teams/{cast.alpha}/policy", json={"direct_api_disabled": False, "fallback_order": []})
            op.patch(f"/teams/{cast.alpha}/bedrock", json={"region": "us-east-1"})


def test_allowances_are_edited_with_used_and_remaining_and_a_typo_is_kept(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    base = f"/admin/{cast.alpha}/usage"
    typo = panel.post(f"{base}/allowances", {"monthly_ai_credits": "12x", "platform_credits": "77",
                                             "compute_credits": "900"})
    assert typo.status_code == 400
    assert 'value="12x"' in typo.text and 'value="77"' in typo.text  # everything typed is still there
    assert 'id="err-allowances-monthly_ai_credits"' in typo.text
    ok = panel.post(f"{base}/allowances", {"monthly_ai_credits": "2500", "platform_credits": "77",
                                           "compute_credits": "900"})
    assert ok.status_code == 303
    settings = _api(cast, "/settings")
    assert isinstance(settings, dict)
    assert (settings["monthly_ai_credits"], settings["platform_credits"], settings["compute_credits"]) == \
        (2500, 77, 900)
    page = panel.get(base).text
    row = re.search(r'<tr data-allowance="platform_credits">(.*?)</tr>', page, re.S)
    assert row and 'class="used"' in row.group(1) and 'class="remaining' in row.group(1)


def test_a_new_team_starts_with_the_operators_allowances(cast: Cast) -> None:
    with cast.client(cast.operator) as op:
        team = op.post("/teams", json={"name": f"fresh-{secrets.token_hex(3)}"})
        assert team.status_code == 201, team.text
        settings = op.get(f"/teams/{team.json()['uid']}/settings").json()
    assert (settings["monthly_ai_credits"], settings["platform_credits"], settings["compute_credits"]) == \
        (1000, 100, 3600)
    configured = Settings.from_env({"BYOLLM_NEW_TEAM_AI_CREDITS": "5", "BYOLLM_NEW_TEAM_PLATFORM_CREDITS": "6",
                                    "BYOLLM_NEW_TEAM_COMPUTE_CREDITS": "7", "BYOLLM_DATA_DIR": "/tmp/x"})
    assert (configured.new_team_ai_credits, configured.new_team_platform_credits,
            configured.new_team_compute_credits) == (5, 6, 7)


def test_model_names_are_edited_on_the_models_page(cast: Cast, panel: PanelClient) -> None:
    """Aliases in the admin's order and the two switches for names byollm does not ship; a bad line comes back
    with what was typed and the error."""
    form = {"aliases": "claude-opus-* => claude-sonnet-4-6\n\nteam-fast -> haiku\n", "claude_family_mapping": "on"}
    panel.sign_in(cast.admin)
    try:
        saved = panel.post(f"/admin/{cast.alpha}/models/names", form)
        assert saved.status_code == 303 and saved.headers["location"] == f"/admin/{cast.alpha}/models", saved.text
        policy = _api(cast, "/policy")
        assert isinstance(policy, dict)
        assert policy["aliases"] == [{"pattern": "claude-opus-*", "target": "claude-sonnet-4-6"},
                                     {"pattern": "team-fast", "target": "claude-haiku-4-5"}]
        settings = _api(cast, "/settings")
        assert isinstance(settings, dict)
        assert settings["claude_family_mapping"] is True and settings["bedrock_model_discovery"] is False
        page = panel.get(f"/admin/{cast.alpha}/models").text
        assert "claude-opus-* =&gt; claude-sonnet-4-6\nteam-fast =&gt; claude-haiku-4-5</textarea>" in page

        refused = panel.post(f"/admin/{cast.alpha}/models/names", {"aliases": "x-* => no-such-model"})
        assert refused.status_code == 400
        assert "aliases[0].target" in refused.text and "x-* =&gt; no-such-model</textarea>" in refused.text
    finally:
        with cast.client(cast.operator) as op:
            op.patch(f"/teams/{cast.alpha}/policy", json={"aliases": []})
            op.patch(f"/teams/{cast.alpha}/settings", json={"claude_family_mapping": True,
                                                             "bedrock_model_discovery": True})


def test_the_models_page_shows_and_saves_the_paid_fallback_rules(cast: Cast, panel: PanelClient) -> None:
    """Issue 16: direct service for credential-less requests is off by default and visible on the Models page."""
    panel.sign_in(cast.admin)
    base = f"/admin/{cast.alpha}/models"
    page = panel.get(base).text
    assert 'id="credentialless_direct_allowed"' in page and "local_credentials_missing" in page
    assert re.search(r'id="credentialless_direct_allowed" name="credentialless_direct_allowed"\s+aria', page)
    assert panel.post(f"{base}/fallbacks", {"credentialless_direct_allowed": "on"}).status_code == 303
    settings = _api(cast, "/settings")
    assert isinstance(settings, dict)
    assert settings["credentialless_direct_allowed"] is True and settings["degraded_runs_fail"] is False
    page = panel.get(base).text
    assert re.search(r'id="credentialless_direct_allowed" name="credentialless_direct_allowed" checked', page)
    panel.post(f"{base}/fallbacks", {"degraded_runs_fail": "on"})
    settings = _api(cast, "/settings")
    assert isinstance(settings, dict)
    assert settings["credentialless_direct_allowed"] is False and settings["degraded_runs_fail"] is True


def test_enabling_a_bedrock_model_without_a_validated_policy_flashes_a_warning(cast: Cast, panel: PanelClient) -> None:
    """Issue 16 item 6: the save succeeds, and the page says the permissions were not validated for it."""
    panel.sign_in(cast.admin)
    base = f"/admin/{cast.alpha}/models"
    model = "claude-sonnet-4-6"
    panel.post(f"{base}/routing", {"model": model, f"direct.{model}": "on"})  # Bedrock off first
    panel.get(base)  # take that save's messages
    assert panel.post(f"{base}/routing", {"model": model, f"bedrock.{model}": "on",
                                          f"direct.{model}": "on"}).status_code == 303
    page = panel.get(base).text
    assert "Model routing saved." in page
    assert 'class="flash warn"' in page and "no permissions policy has been validated" in page
    assert "byollm doctor" in page
