"""The request log as an admin reads it: ``GET /teams/{team}/requests`` with filters and paging, the same
rows through ``byollm admin requests``, and the panel's Requests page, each finding a request by the
``x-request-id`` its response carried."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from typer.testing import CliRunner

from byollm.cli.main import app
from panel.conftest import PanelClient
from support.stack import Stack

PROMPT = {"role": "user", "content": "hi"}


def _wait(stack: Stack, team_uid: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rows: list[dict[str, Any]] = stack.admin.get(f"/teams/{team_uid}/requests").json()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _admin_token(stack: Stack, team_uid: str, email: str) -> tuple[str, str]:
    member = stack.admin.post(f"/teams/{team_uid}/members", json={"email": email, "role": "admin",
                                                                   "display_name": "Ada Admin"})
    assert member.status_code == 201, member.text
    issued = stack.admin.post(f"/teams/{team_uid}/tokens", json={"name": "a", "user_uid": member.json()["user_uid"]})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"]), str(member.json()["user_uid"])


def test_requests_are_filtered_paged_named_and_found_by_their_request_id(stack: Stack) -> None:
    team = stack.new_team()
    with stack.gateway(team.token, stack.delegated_headers()) as client:
        first = client.post("/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 5, "messages": [PROMPT]})
        stack.fault(service="bedrock", error="ThrottlingException", count=1)
        fell_back = client.post("/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 5,
                                                      "messages": [PROMPT]})
        failed = client.post("/v1/messages", json={"model": "no-such-model", "max_tokens": 5, "messages": [PROMPT]})
    assert first.status_code == 200 and fell_back.status_code == 200, (first.text, fell_back.text)
    assert failed.status_code >= 400
    rows = _wait(stack, team.uid, 3)
    assert len(rows) == 3
    wanted = fell_back.headers["x-request-id"]

    def listed(**params: Any) -> list[dict[str, Any]]:
        r = stack.admin.get(f"/teams/{team.uid}/requests", params=params)
        assert r.status_code == 200, r.text
        return list(r.json())

    [row] = listed(request_id=wanted)
    assert row["request_id"] == wanted and row["outcome"] == "fallback" and row["host"] == "anthropic"
    assert [a["host"] for a in row["attempts"]] == ["bedrock", "anthropic"]
    assert row["attempts"][0]["error_code"] and row["billing"] == "ai_credits" and float(row["credits"]) > 0
    assert row["principal_name"] and row["principal_name"].endswith("@example.test")  # a name, not a UID
    assert [r["request_id"] for r in listed(outcome="fallback")] == [wanted]
    assert [r["request_id"] for r in listed(outcome="ok")] == [first.headers["x-request-id"]]
    assert [r["request_id"] for r in listed(outcome="error")] == [failed.headers["x-request-id"]]
    assert [r["request_id"] for r in listed(route="bedrock")] == [first.headers["x-request-id"]]
    assert [r["request_id"] for r in listed(route="direct")] == [wanted]
    assert len(listed(model="claude-opus-4-7")) == 2 and len(listed(model="no-such-model")) == 1
    assert len(listed(member=row["principal_name"])) == 3
    newest, second = listed(limit=1), listed(limit=1, offset=1)
    assert [newest[0]["request_id"], second[0]["request_id"]] == [r["request_id"] for r in rows[:2]]
    refused = stack.admin.get(f"/teams/{team.uid}/requests", params={"outcome": "sideways"})
    assert refused.status_code == 400 and "outcome" in refused.text
    assert stack.admin.get(f"/teams/{team.uid}/requests", params={"member": "nobody@x.test"}).status_code == 400

    # the CLI, over the admin API, finds the same row and names the failed attempt's reason
    admin_token, _ = _admin_token(stack, team.uid, "ada@example.test")
    env = {"BYOLLM_URL": stack.url, "BYOLLM_TOKEN": admin_token, "BYOLLM_TEAM": team.uid, "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["admin", "requests", "--id", wanted, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert [r["request_id"] for r in json.loads(result.output)] == [wanted]
    table = CliRunner().invoke(app, ["admin", "requests", "--outcome", "fallback"], env=env)
    assert table.exit_code == 0, table.output
    assert wanted in table.output and row["attempts"][0]["error_code"] in table.output
    assert row["principal_name"] in table.output and "ai_credits" in table.output

    # the panel's Requests page: the id finds its row, the filters narrow, names are shown
    panel = PanelClient(stack.url)
    try:
        panel.sign_in(admin_token)
        page = panel.get(f"/admin/{team.uid}/requests", params={"id": wanted})
        assert page.status_code == 200
        assert re.findall(r'data-request-id="([^"]+)"', page.text) == [wanted]
        assert row["principal_name"] in page.text and "fallback" in page.text
        assert row["attempts"][0]["error_code"] in page.text
        errors = panel.get(f"/admin/{team.uid}/requests", params={"outcome": "error"}).text
        assert re.findall(r'data-request-id="([^"]+)"', errors) == [failed.headers["x-request-id"]]
        none = panel.get(f"/admin/{team.uid}/requests", params={"id": "req_000000000000nothing"}).text
        assert 'id="no-requests"' in none
    finally:
        panel.close()
