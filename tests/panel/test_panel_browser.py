"""The admin panel in a real browser (Playwright driving Debian's Chromium): the issue's Done-when flow.

An admin signs in with the keyboard, routes Claude Opus 4.7 through Bedrock with its global inference
profile, disables every direct-API model, gives a named agent its own role, runs Validate and sees the
trust-policy check fail with the condition named, fixes the trust policy in the simulator (its admin
endpoint, as the cloud admin would in IAM), runs Validate again and sees it pass. Then the agent's run,
started from the Runs page, streams its events live until it succeeds, and the Usage page charts it.
Screenshots go to ``artifacts/panel/``. Skipped, with the reason, where ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips the tests, saying why
    expect = None

from support.browser import ARTIFACTS, NEEDS_CHROMIUM, chromium
from support.oidc_stack import make_role, running_oidc_stack
from support.stack import ACCOUNT, Stack

GLOBAL_OPUS = "global.anthropic.claude-opus-4-7-v1:0"

pytestmark = [
    pytest.mark.slow,
    NEEDS_CHROMIUM,
]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_oidc_stack(tmp_path) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _admin_token(stack: Stack, team_uid: str) -> str:
    member = stack.admin.post(f"/teams/{team_uid}/members",
                              json={"email": f"admin-{secrets.token_hex(3)}@example.test", "role": "admin"})
    assert member.status_code == 201, member.text
    issued = stack.admin.post(f"/teams/{team_uid}/tokens",
                              json={"name": "panel", "user_uid": member.json()["user_uid"]})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _validate(page: Any, agent: str, trust: dict[str, Any]) -> None:
    page.get_by_label("Scope").select_option(label=f"Agent {agent}")
    page.get_by_label("Trust policy to evaluate").fill(json.dumps(trust, indent=2))
    page.get_by_role("button", name="Run Validate").click()
    page.wait_for_selector("#summary")


def test_admin_configures_bedrock_and_validate_names_then_clears_the_trust_policy_failure(
        stack: Stack, browser: Any) -> None:
    team = stack.new_team(models={"claude-opus-4-7": {"direct": True}, "gpt-5": {"direct": True}},
                          platform_credits=1000, compute_credits=100_000)
    token = _admin_token(stack, team.uid)
    role_arn = make_role(stack, subjects=["scoped_principal:some-other-team/*"])  # trusts another team only
    role_name = role_arn.rsplit("/", 1)[1]
    page = browser.new_page()
    page.set_default_timeout(20_000)
    try:
        # sign in with the keyboard only
        page.goto(f"{stack.url}/admin")
        expect(page.get_by_label("Admin token")).to_be_focused()
        page.keyboard.type(token)
        page.keyboard.press("Enter")
        page.get_by_role("link", name=team.admin.get(f"/teams/{team.uid}").json()["name"]).click()
        assert page.url.endswith(f"/admin/{team.uid}/models")
        assert page.locator("#team-uid").inner_text() == team.uid
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

        # Models: Opus through Bedrock with the global profile, every direct API model disabled
        page.get_by_label("Route Claude Opus 4.7 through Bedrock").check()
        page.get_by_label("Inference profile override for Claude Opus 4.7").fill(GLOBAL_OPUS)
        page.get_by_label("Disable all direct API models (Bedrock only)").check()
        page.get_by_role("button", name="Save routing").click()
        page.get_by_text("Model routing saved.").wait_for()
        assert "governed by your team's own cloud account settings" in page.inner_text(".retention")
        _shot(page, "1-models")
        policy = team.admin.get(f"/teams/{team.uid}/policy").json()
        opus = next(m for m in policy["models"] if m["model"] == "claude-opus-4-7")
        assert (opus["bedrock"], opus["inference_profile"], policy["direct_api_disabled"]) == (True, GLOBAL_OPUS, True)

        # Agents: a named agent with its own (custom) role, defaulting to the Bedrock model
        page.get_by_role("link", name="Agents").click()
        form = page.locator("form[aria-labelledby=new-agent-h]")
        form.get_by_label("Name").fill("reviewer")
        form.get_by_label("Custom", exact=True).check()
        form.get_by_label("Custom role ARN").fill(role_arn)
        form.get_by_label("Default model").select_option("claude-opus-4-7")
        form.get_by_role("button", name="Create agent").click()
        page.get_by_text("Agent 'reviewer' created.").wait_for()
        _shot(page, "2-agents")
        agents = team.admin.get(f"/teams/{team.uid}/agents").json()
        assert [(a["name"], a["role_arn_override"]) for a in agents] == [("reviewer", role_arn)]

        # Validate: the role's trust policy admits another team's tokens, so the check fails, naming why
        bad_trust = _trust_policy(stack, role_name)
        page.get_by_role("link", name="Validate").click()
        _validate(page, "reviewer", bad_trust)
        trust = page.locator('[data-check="agent:reviewer.trust_policy"]')
        assert trust.get_attribute("data-status") == "fail"
        text = trust.inner_text()
        assert ":sub" in text and "How to fix:" in text
        prompt = page.locator('[data-check="agent:reviewer.prompt.claude-opus-4-7"]')
        assert prompt.get_attribute("data-status") == "fail"
        assert "role_assumption_failed" in prompt.inner_text()
        assert page.locator('[data-check="agent:reviewer.trust_policy"] details summary').count() >= 3
        assert "governed by your team's own cloud account settings" in page.inner_text("#results-h ~ .retention")
        _shot(page, "3-validate-fails")

        # the cloud admin fixes the trust policy; Validate passes
        fixed = stack.sim_http.post(f"/_sim/accounts/{ACCOUNT}/web-identity-trust", json={
            "issuer": stack.url, "role": role_name, "subjects": [f"scoped_principal:{team.uid}/*"],
            "audience": "sts.amazonaws.com"})
        assert fixed.status_code == 200, fixed.text
        _validate(page, "reviewer", fixed.json()["trust_policy"])
        assert trust.get_attribute("data-status") == "pass"
        assert prompt.get_attribute("data-status") == "pass"
        _shot(page, "4-validate-passes")

        # Runs: the agent's run goes through Bedrock with the fixed role; its events arrive live (SSE)
        stack.fault(service="bedrock", delay_s=2.5, count=1)  # the model call stalls: events arrive while we watch
        page.get_by_role("link", name="Runs").click()
        page.get_by_label("Prompt").fill("Say hello.")
        page.get_by_label("Named agent").select_option(label="reviewer")
        page.get_by_role("button", name="Start run").click()
        page.get_by_text("Run queued.").wait_for()
        assert page.inner_text("#run-state") in ("queued", "running")  # rendered before the run ended
        page.locator("#run-state", has_text="succeeded").wait_for()  # (the CSP forbids wait_for_function's eval)
        expect(page.locator("#stream-status")).to_have_text("The run has ended.")  # the EventSource saw the end
        assert page.locator("#events li[data-kind=model_call]").count() == 1
        assert not page.get_by_role("button", name="Cancel run").is_visible()
        _shot(page, "5-run-live")

        # Usage: the run's Bedrock request is charted per host (the request log is written in batches)
        for _ in range(40):
            page.goto(f"{stack.url}/admin/{team.uid}/usage?days=1")
            if page.locator("#dim-host ~ table th", has_text="bedrock").count():
                break
            page.wait_for_timeout(250)
        assert page.locator("section:has(#dim-host) svg rect").count() >= 2  # requests and credits
        assert page.locator("section:has(#dim-host) table th[scope=row]", has_text="bedrock").count() == 1
        _shot(page, "6-usage")
    except Exception:
        _shot(page, "failure")
        raise
    finally:
        page.close()


def _trust_policy(stack: Stack, role_name: str) -> dict[str, Any]:
    """The role's current trust policy, as the cloud admin would copy it from IAM (the simulator's world)."""
    world = stack.sim_http.get("/_sim/world").json()
    return dict(world["accounts"][ACCOUNT]["roles"][role_name]["trust_policy"])
