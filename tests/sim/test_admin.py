"""The admin API, the request journal and the invocation log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from byollm.sim import SimServer
from sim.sim_support import ACCOUNT, HAIKU, ClientFactory, claude_body


def test_world_endpoint(admin: httpx.Client) -> None:
    world = admin.get("/world").json()
    assert set(world["accounts"]) == {"111122223333", "444455556666"}
    assert {m["catalog_id"] for m in world["models"]} >= {"claude-opus-4-7", "claude-haiku-4-5"}


def test_journal_records_every_request(admin: httpx.Client, client: ClientFactory) -> None:
    admin.delete("/requests").raise_for_status()
    client("bedrock-runtime").invoke_model(modelId=HAIKU, body=claude_body("canary-1234"))
    client("sts").get_caller_identity()
    entries = admin.get("/requests").json()["requests"]
    services = [e["service"] for e in entries]
    assert "bedrock-runtime" in services
    assert "sts" in services
    invoke = next(e for e in entries if e["service"] == "bedrock-runtime")
    assert "canary-1234" in invoke["body"]
    assert invoke["path"].endswith("v1%3A0/invoke")
    assert any(name.lower() == "authorization" for name, _ in invoke["headers"])
    only_sts = admin.get("/requests", params={"service": "sts"}).json()["requests"]
    assert {e["service"] for e in only_sts} == {"sts"}


def test_invocations_can_be_cleared(admin: httpx.Client, client: ClientFactory) -> None:
    client("bedrock-runtime").invoke_model(modelId=HAIKU, body=claude_body())
    assert admin.get("/invocations").json()["invocations"]
    admin.delete("/invocations").raise_for_status()
    assert admin.get("/invocations").json()["invocations"] == []


def test_faults_admin(admin: httpx.Client) -> None:
    added = admin.post("/faults", json={"service": "openai", "error": "rate_limit_exceeded", "count": 3}).json()
    rule_id = added["faults"][0]["rule_id"]
    assert [f["rule_id"] for f in admin.get("/faults").json()["faults"]] == [rule_id]
    assert admin.delete(f"/faults/{rule_id}").status_code == 200
    assert admin.get("/faults").json()["faults"] == []
    assert admin.post("/faults", json={"service": "nowhere", "error": "x"}).status_code == 400


def test_revoking_model_access(admin: httpx.Client, client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")
    admin.delete(f"/accounts/{ACCOUNT}/model-access/{HAIKU}").raise_for_status()
    with pytest.raises(runtime.exceptions.AccessDeniedException):
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    admin.put(f"/accounts/{ACCOUNT}/model-access/{HAIKU}").raise_for_status()
    runtime.invoke_model(modelId=HAIKU, body=claude_body())


def test_reset_restores_the_world(sim: SimServer, admin: httpx.Client) -> None:
    admin.put(f"/accounts/{ACCOUNT}/roles/extra", json={"max_session_duration": 3600}).raise_for_status()
    assert "extra" in admin.get("/world").json()["accounts"][ACCOUNT]["roles"]
    admin.post("/reset").raise_for_status()
    assert "extra" not in admin.get("/world").json()["accounts"][ACCOUNT]["roles"]


def test_unknown_account_is_404(admin: httpx.Client) -> None:
    assert admin.put("/accounts/999999999999/quotas/*", json={}).status_code == 404


def test_cli_reports_world_errors(tmp_path: Path) -> None:
    from byollm.cli.main import app

    bad = tmp_path / "w.yaml"
    bad.write_text(
        "accounts:\n  '111122223333':\n    regions: [us-east-1]\n    roles: {r: {max_session_duration: x}}\n"
    )
    result = CliRunner().invoke(app, ["sim", "--world", str(bad)])
    assert result.exit_code == 2
    assert "max_session_duration" in result.output
