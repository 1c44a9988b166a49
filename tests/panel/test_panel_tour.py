"""Every panel page in a real browser (Playwright driving Debian's Chromium), checking the fixes an admin
walking through the panel asked for, with a screenshot of each page in ``artifacts/panel/tour-*.png``.

What it checks, page by page:
- Models: a Bedrock model the team's region lacks is "not in this region", not "not on Bedrock"; ticking
  "Disable all direct API models" unticks and disables every per-model direct box at once (and after
  saving), and the fallback order lists only usable models; a refused save keeps what was typed, with the
  error beside its field.
- Agents and Members: a refused form keeps every value and marks the field; Delete, Remove and Revoke ask
  on a confirmation page first (no script needed) and Cancel changes nothing; tokens name their holder.
- Usage: allowances are editable and show used and remaining; the credits chart stacks the three buckets,
  so a Bedrock-only model's run charges show as platform and compute, never as AI credits.
- Requests: a response's ``x-request-id`` finds its row, with the member named and the attempt's reason.
- Runs and a run: people and agents by name; a failed run's events are readable sentences with the
  failure highlighted and its remediation; a live run's header updates when it finishes.
- Audit: actors and targets by name. Validate: a progress indicator while it runs; the checks that need
  the CLI are on screen (the skip-link's class no longer hides them).
Skipped, with the reason, where ``/usr/bin/chromium`` or Playwright is missing.
"""

from __future__ import annotations

import re
import secrets
import time
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
from support.stack import Stack

PROMPT = {"role": "user", "content": "hi"}

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


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tour-{name}.png"), full_page=True)


def _admin(stack: Stack, team_uid: str, email: str, name: str) -> tuple[str, str]:
    member = stack.admin.post(f"/teams/{team_uid}/members", json={"email": email, "role": "admin",
                                                                   "display_name": name})
    assert member.status_code == 201, member.text
    issued = stack.admin.post(f"/teams/{team_uid}/tokens", json={"name": "panel",
                                                                  "user_uid": member.json()["user_uid"]})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"]), str(member.json()["user_uid"])


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/admin")
    page.get_by_label("Admin token").fill(token)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Sign out").wait_for()  # the address is /admin before and after


def _wait_for_run(stack: Stack, team_uid: str, run_uid: str, states: tuple[str, ...]) -> dict[str, Any]:
    for _ in range(200):
        run = stack.admin.get(f"/teams/{team_uid}/runs/{run_uid}").json()
        if run["state"] in states:
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"run {run_uid} never reached {states}: {run}")


def test_every_panel_page_as_an_admin_sees_it(stack: Stack, browser: Any) -> None:
    team = stack.new_team(models={"claude-haiku-4-5": {"bedrock": True}, "gpt-5": {"direct": True},
                                  "claude-sonnet-4-6": {"bedrock": True, "direct": True}},
                          platform_credits=1000, compute_credits=100_000)
    token, admin_uid = _admin(stack, team.uid, "ada@example.test", "Ada Admin")
    good_role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    broken_role = make_role(stack, subjects=["scoped_principal:some-other-team/*"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    try:
        # sign-in and the team picker
        page.goto(f"{stack.url}/admin")
        _shot(page, "00-sign-in")
        _sign_in(page, stack.url, token)
        _shot(page, "01-teams")
        page.get_by_role("link", name=team.admin.get(f"/teams/{team.uid}").json()["name"]).click()
        page.wait_for_url(f"**/admin/{team.uid}/models")

        # Models: a refused save keeps what was typed and marks the field
        page.get_by_label("Role ARN").fill("not-an-arn")
        page.get_by_label("Endpoint URL").fill(stack.sim.url)
        page.get_by_role("button", name="Save Bedrock host").click()
        expect(page.locator("#err-bedrock-role_arn")).to_be_visible()
        expect(page.get_by_label("Role ARN")).to_have_value("not-an-arn")
        expect(page.get_by_label("Role ARN")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Endpoint URL")).to_have_value(stack.sim.url)
        _shot(page, "02-models-error-kept")
        page.get_by_label("Role ARN").fill(good_role)
        page.get_by_role("button", name="Save Bedrock host").click()
        page.get_by_text("Bedrock host configuration saved.").wait_for()

        # Agents: a refused create keeps every value; a working agent and a broken one
        page.get_by_role("link", name="Agents").click()
        form = page.locator("form[aria-labelledby=new-agent-h]")
        form.get_by_label("Name").fill("reviewer")
        form.get_by_label("Custom", exact=True).check()
        form.get_by_label("Default model").select_option("claude-haiku-4-5")
        form.get_by_label("Tools").fill("shell")
        form.get_by_role("button", name="Create agent").click()
        expect(page.locator("#err-new-role_arn")).to_be_visible()
        form = page.locator("form[aria-labelledby=new-agent-h]")
        expect(form.get_by_label("Name")).to_have_value("reviewer")
        expect(form.get_by_label("Tools")).to_have_value("shell")
        expect(form.get_by_label("Default model")).to_have_value("claude-haiku-4-5")
        expect(form.get_by_label("Custom", exact=True)).to_be_checked()
        _shot(page, "03-agents-error-kept")
        form.get_by_label("Team default").check()
        form.get_by_role("button", name="Create agent").click()
        page.get_by_text("Agent 'reviewer' created.").wait_for()
        form = page.locator("form[aria-labelledby=new-agent-h]")
        form.get_by_label("Name").fill("broken")
        form.get_by_label("Custom", exact=True).check()
        form.get_by_label("Custom role ARN").fill(broken_role)
        form.get_by_label("Default model").select_option("claude-haiku-4-5")
        form.get_by_role("button", name="Create agent").click()
        page.get_by_text("Agent 'broken' created.").wait_for()
        form = page.locator("form[aria-labelledby=new-agent-h]")
        form.get_by_label("Name").fill("doomed")
        form.get_by_role("button", name="Create agent").click()
        page.get_by_text("Agent 'doomed' created.").wait_for()
        _shot(page, "04-agents")
        page.get_by_role("button", name="Delete doomed…").click()
        expect(page.get_by_role("heading", name="Delete agent doomed?")).to_be_visible()
        _shot(page, "05-confirm-delete")
        page.get_by_role("link", name="Cancel, keep it").click()
        expect(page.get_by_role("row", name=re.compile("doomed"))).to_have_count(1)  # Cancel changed nothing
        page.get_by_role("button", name="Delete doomed…").click()
        page.get_by_role("button", name="Delete agent doomed").click()
        page.get_by_text("Agent deleted").wait_for()
        assert [a["name"] for a in stack.admin.get(f"/teams/{team.uid}/agents").json()] == ["broken", "reviewer"]

        # Members and tokens: a refused invite keeps its values; tokens name their holder; Revoke asks first
        page.get_by_role("link", name="Members and tokens").click()
        page.get_by_label("Email").fill("ada@example.test")  # already a member: refused
        page.get_by_label("Display name").fill("Bea Builder")
        page.get_by_label("Role", exact=True).select_option("admin")
        page.get_by_role("button", name="Invite").click()
        expect(page.locator("#err-invite-email")).to_contain_text("already a member")
        expect(page.get_by_label("Display name")).to_have_value("Bea Builder")
        expect(page.get_by_label("Role", exact=True)).to_have_value("admin")
        _shot(page, "06-members-error-kept")
        page.get_by_label("Email").fill("bea@example.test")
        page.get_by_label("Display name").fill("Bea Builder")
        page.get_by_role("button", name="Invite").click()
        expect(page.locator("#issued-token")).to_be_visible()  # someone new gets their first token, once
        page.get_by_label("Name", exact=True).fill("ci")
        page.get_by_label("For").select_option(label="agent reviewer")
        page.get_by_label("Expires in days").fill("a week")
        page.get_by_role("button", name="Issue token").click()
        expect(page.locator("#err-issue-expires_in_days")).to_be_visible()
        expect(page.get_by_label("Name", exact=True)).to_have_value("ci")
        expect(page.get_by_label("For")).to_have_value(re.compile("^agent:"))
        page.get_by_label("Expires in days").fill("7")
        page.get_by_role("button", name="Issue token").click()
        expect(page.locator("#issued-token")).to_be_visible()
        page.get_by_role("link", name="Members and tokens").click()
        tokens = page.locator("section[aria-labelledby=tokens-h] table")
        expect(tokens.get_by_role("row", name=re.compile(r"^ci "))).to_contain_text("agent reviewer")
        assert admin_uid not in tokens.inner_text()
        _shot(page, "07-members")
        page.get_by_role("button", name=re.compile(r"^Revoke ci ")).click()
        expect(page.get_by_role("heading", name=re.compile(r"Revoke token ci"))).to_be_visible()
        _shot(page, "08-confirm-revoke")
        page.locator("#confirm-button").click()
        page.get_by_text("Token revoked.").wait_for()

        # traffic for Usage and Requests: Haiku through Bedrock (no credits), gpt-5 direct (AI credits)
        with stack.gateway(team.token, stack.delegated_headers()) as client:
            bedrock = client.post("/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5,
                                                        "messages": [PROMPT]})
            direct = client.post("/v1/chat/completions", json={"model": "gpt-5", "messages": [PROMPT]})
        assert bedrock.status_code == 200 and direct.status_code == 200, (bedrock.text, direct.text)

        # Runs: the broken agent's run fails; its page explains why, highlighted
        page.get_by_role("link", name="Runs", exact=True).click()
        page.get_by_label("Prompt").fill("Say hello.")
        page.get_by_label("Named agent").select_option(label="broken")
        page.get_by_role("button", name="Start run").click()
        page.get_by_text("Run queued.").wait_for()
        failed_uid = page.url.rsplit("/", 1)[1]
        _wait_for_run(stack, team.uid, failed_uid, ("failed", "succeeded"))
        page.reload()
        failures = page.locator("#events li.sev-fail")
        assert failures.count() >= 1
        assert "How to fix:" in failures.first.inner_text()
        assert '{"' not in page.inner_text("#events")  # sentences, not raw JSON
        expect(page.locator("#run-facts")).to_contain_text("agent broken")
        expect(page.locator("#run-facts")).to_contain_text("Ada Admin")
        _shot(page, "09-run-failed")

        # the broken agent on a model the direct API can also serve: the run ends degraded, visibly
        page.get_by_role("link", name="Runs", exact=True).click()
        page.get_by_label("Prompt").fill("Say hello.")
        page.get_by_label("Named agent").select_option(label="broken")
        page.get_by_label(re.compile("^Model")).fill("claude-sonnet-4-6")
        page.get_by_role("button", name="Start run").click()
        page.get_by_text("Run queued.").wait_for()
        degraded_uid = page.url.rsplit("/", 1)[1]
        done = _wait_for_run(stack, team.uid, degraded_uid, ("failed", "succeeded"))
        assert done["state"] == "succeeded" and done["degraded"] is True, done
        page.reload()
        expect(page.locator("#run-facts strong.degraded")).to_be_visible()
        expect(page.locator("#run-facts .degraded-why")).to_contain_text("role_assumption_failed")
        expect(page.locator("#run-facts .degraded-why")).to_contain_text("How to fix:")
        degraded_event = page.locator("#events li[data-kind=degraded]")
        expect(degraded_event).to_have_class(re.compile("sev-warn"))
        expect(degraded_event).to_contain_text("How to fix:")
        expect(page.locator("#events li[data-kind=route_failure]")).to_have_class(re.compile("sev-fail"))
        _shot(page, "09b-run-degraded")
        page.get_by_role("link", name="All runs").click()
        expect(page.locator("tr.run-degraded")).to_have_count(1)
        expect(page.locator("tr.run-degraded")).to_contain_text("role_assumption_failed")

        # ...and a healthy run, watched live: its header updates when it finishes
        stack.fault(service="bedrock", delay_s=2.5, count=1)
        page.get_by_role("link", name="Runs", exact=True).click()
        page.get_by_label("Prompt").fill("Say hello.")
        page.get_by_label("Named agent").select_option(label="reviewer")
        page.get_by_role("button", name="Start run").click()
        page.get_by_text("Run queued.").wait_for()
        assert "finished" not in page.inner_text("#run-facts")
        page.locator("#run-facts", has_text="finished").wait_for()  # the header was fetched again at the end
        expect(page.locator("#run-state")).to_have_text("succeeded")
        expect(page.locator("#stream-status")).to_have_text("The run has ended.")
        expect(page.locator("#events li[data-kind=model_call]")).to_have_count(1)
        _shot(page, "10-run-live-finished")
        page.get_by_role("link", name="All runs").click()
        runs_text = page.inner_text("table")
        assert "Ada Admin" in runs_text and "agent broken" in runs_text and admin_uid not in runs_text
        assert "degraded" in runs_text
        _shot(page, "11-runs")

        # Usage: allowances editable with used and remaining; credits stacked per bucket
        page.get_by_role("link", name="Usage and credits").click()
        page.get_by_label("AI credits").fill("50000x")
        page.get_by_role("button", name="Save allowances").click()
        expect(page.locator("#err-allowances-monthly_ai_credits")).to_be_visible()
        expect(page.get_by_label("AI credits")).to_have_value("50000x")
        page.get_by_label("AI credits").fill("50000")
        page.get_by_label("Compute credits").fill("90000")
        page.get_by_role("button", name="Save allowances").click()
        page.get_by_text("Monthly allowances saved.").wait_for()
        settings = stack.admin.get(f"/teams/{team.uid}/settings").json()
        assert (settings["monthly_ai_credits"], settings["compute_credits"]) == (50000, 90000)
        for _ in range(40):  # the request log is written in batches
            page.goto(f"{stack.url}/admin/{team.uid}/usage?days=1")
            if page.locator("#dim-host ~ table th", has_text="openai").count():
                break
            page.wait_for_timeout(250)
        platform = page.locator('tr[data-allowance="platform_credits"]')
        assert float(platform.locator(".used").inner_text()) >= 2  # two runs, one platform credit each
        haiku = page.locator("section:has(#dim-model) table tr", has_text="claude-haiku-4-5")
        assert float(haiku.locator(".credits-ai_credits").inner_text()) == 0  # Bedrock: no AI credits
        assert float(haiku.locator(".credits-platform").inner_text()) >= 2
        # AI credits: gpt-5 and the degraded run's paid Sonnet fallback; never Bedrock-only Haiku
        assert page.locator("section:has(#dim-model) rect.bucket-ai_credits").count() == 2
        assert page.locator("section:has(#dim-model) rect.bucket-platform").count() >= 1
        _shot(page, "12-usage")

        # Requests: the x-request-id from a response finds its row
        page.get_by_role("link", name="Requests").click()
        page.get_by_label("Request id").fill(direct.headers["x-request-id"])
        page.get_by_role("button", name="Filter").click()
        rows = page.locator("table.requests tbody tr")
        expect(rows).to_have_count(1)
        assert rows.first.get_attribute("data-request-id") == direct.headers["x-request-id"]
        assert "AI credits" in rows.first.inner_text() and "gpt-5" in rows.first.inner_text()
        _shot(page, "13-requests-by-id")
        page.get_by_role("link", name="Clear").click()
        page.get_by_label("Route").select_option("bedrock")
        page.get_by_role("button", name="Filter").click()
        assert page.locator("table.requests tbody tr").count() >= 1
        assert "openai" not in page.inner_text("table.requests tbody")
        _shot(page, "14-requests-bedrock")

        # Audit: people and targets by name
        page.get_by_role("link", name="Audit log").click()
        audit = page.inner_text("table")
        assert "Ada Admin" in audit and "agent doomed" in audit and admin_uid not in audit
        _shot(page, "15-audit")

        # Validate: progress while it runs; the checks that need the CLI are on screen
        page.get_by_role("link", name="Validate").click()
        # (a click waits until the answer starts loading, so the page is asked to show what a submit shows)
        expect(page.locator("#validate-progress")).to_be_hidden()
        page.locator("#validate-form").dispatch_event("submit")
        expect(page.locator("#validate-progress")).to_be_visible()
        expect(page.get_by_role("button", name="Validating…")).to_be_disabled()
        page.locator("#validate-elapsed", has_text="s so far").wait_for()
        _shot(page, "16-validate-running")
        page.reload()
        page.get_by_role("button", name="Run Validate").click()
        page.wait_for_selector("#summary")
        cli = page.locator(".doctor-check.needs-cli")
        assert cli.count() >= 1
        for i in range(cli.count()):
            box = cli.nth(i).bounding_box()
            assert box is not None and box["x"] >= 0 and box["width"] > 100, box  # on screen, not off at -9999px
        assert page.locator(".doctor-check.check-fail").count() >= 1
        _shot(page, "17-validate-results")

        # a second team in eu-north-1: region labels and the direct-API switch
        eu = stack.new_team(models={"claude-sonnet-4-6": {"bedrock": True, "direct": True}, "gpt-5": {"direct": True}},
                            region="eu-north-1", fallback=["gpt-5", "claude-sonnet-4-6"])
        eu_token, _ = _admin(stack, eu.uid, "eve@example.test", "Eve Europe")  # tokens are per team
        page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # a fresh browser session
        page.set_default_timeout(20_000)
        _sign_in(page, stack.url, eu_token)
        page.goto(f"{stack.url}/admin/{eu.uid}/models")
        opus41 = page.locator('tr[data-model="claude-opus-4-1"] td.bedrock-cell')
        expect(opus41).to_contain_text("not in this region (eu-north-1)")
        expect(page.locator('tr[data-model="gpt-5"] td.bedrock-cell')).to_contain_text("not on Bedrock")
        gpt_direct = page.locator('tr[data-model="gpt-5"] .direct-box')
        expect(gpt_direct).to_be_checked()
        page.get_by_label("Disable all direct API models (Bedrock only)").check()
        expect(gpt_direct).not_to_be_checked()  # at once, before saving
        expect(gpt_direct).to_be_disabled()
        expect(page.get_by_label(re.compile("^Fallback order"))).to_have_value("claude-sonnet-4-6")
        _shot(page, "18-models-direct-off-live")
        page.get_by_role("button", name="Save routing").click()
        page.get_by_text("Model routing saved.").wait_for()
        expect(gpt_direct).not_to_be_checked()
        expect(gpt_direct).to_be_disabled()
        expect(page.get_by_label(re.compile("^Fallback order"))).to_have_value("claude-sonnet-4-6")
        policy = eu.admin.get(f"/teams/{eu.uid}/policy").json()
        assert policy["direct_api_disabled"] is True
        assert next(m for m in policy["models"] if m["model"] == "gpt-5")["direct"] is True  # kept for later
        _shot(page, "19-models-direct-off-saved")
        assert "Left out" not in page.inner_text("#fallback-usable")  # what was saved is all usable
        page.get_by_label("Disable all direct API models (Bedrock only)").uncheck()
        expect(gpt_direct).to_be_checked()  # the saved choice comes back
        expect(gpt_direct).to_be_enabled()
    except Exception:
        _shot(page, "failure")
        raise
    finally:
        page.close()


def test_a_new_team_in_the_panel_can_start_a_run_without_setting_allowances(stack: Stack, browser: Any) -> None:
    """The operator's starting allowances (settings.py) let a brand-new team's first run start."""
    created = stack.admin.post("/teams", json={"name": f"fresh-{secrets.token_hex(3)}"})
    assert created.status_code == 201, created.text
    uid = created.json()["uid"]
    stack.admin.patch(f"/teams/{uid}/policy", json={"models": {"gpt-5": {"direct": True}}})
    token, _ = _admin(stack, uid, "new@example.test", "New Admin")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    try:
        _sign_in(page, stack.url, token)
        page.goto(f"{stack.url}/admin/{uid}/usage")
        expect(page.get_by_label("Platform credits")).to_have_value("100")
        _shot(page, "20-new-team-usage")
        page.goto(f"{stack.url}/admin/{uid}/runs")
        page.get_by_label("Prompt").fill("hi")
        page.get_by_label(re.compile("^Model")).fill("gpt-5")
        page.get_by_role("button", name="Start run").click()
        page.get_by_text("Run queued.").wait_for()
    except Exception:
        _shot(page, "failure-new-team")
        raise
    finally:
        page.close()
