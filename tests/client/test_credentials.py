"""The user's own AWS credentials through the proxy, against a real AWS config written by the simulator.

- auto-refresh on: a ``credential_process`` profile with short-lived credentials; requests across their
  expiry all succeed, each signed with fresh credentials;
- auto-refresh off: once the credentials expire, the tool gets ``local_credentials_expired`` (401,
  ``x-should-retry: false``) in its API's shape, the proxy's terminal says what to run, and the simulator's
  journal shows that no request went out after the expiry; turning auto-refresh on fixes it without a restart;
- an ``aws login`` session that can no longer refresh: the user is told to run ``aws login``;
- long-term keys: flagged by the client, refused by the gateway's default.
"""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from byollm.client.config import load_config, save_config, set_value
from support.client_env import make_client_env, running_proxy
from support.stack import DEV_USER, Stack, Team

HI = [{"role": "user", "content": "hi"}]
BEDROCK_MODEL = "claude-sonnet-4-6"


def _bedrock_keys(stack: Stack) -> list[str]:
    """The access key ids that signed the Bedrock requests the simulator received, in order."""
    keys = []
    for entry in stack.journal():
        if "bedrock" not in entry["service"]:
            continue
        headers = {k.lower(): v for k, v in entry["headers"]}
        auth = headers.get("authorization", "")
        if "Credential=" in auth:
            keys.append(auth.split("Credential=", 1)[1].split("/", 1)[0])
    return keys


def test_auto_refresh_on_keeps_working_across_expiry(tmp_path: Path, stack: Stack, team: Team,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-process", auto_refresh=True,
                    credential_duration_s=4)
    stack.clear_journal()
    with running_proxy(margin_s=2) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key, max_retries=0)
        routes = []
        for _ in range(3):  # spans 5 s: past the 4 s lifetime of the first credentials
            raw = client.messages.with_raw_response.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
            routes.append(raw.headers["x-byollm-route"])
            time.sleep(2.5)
    assert all(r.startswith("bedrock:") for r in routes)
    keys = _bedrock_keys(stack)
    assert len(keys) == 3
    assert len(set(keys)) == 3, "each request after the first expiry window was signed with fresh credentials"
    assert all(k.startswith("ASIA") for k in keys)


def test_auto_refresh_off_stops_at_expiry_and_sends_nothing(tmp_path: Path, stack: Stack, team: Team,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-process", auto_refresh=False,
                    credential_duration_s=4)
    stack.clear_journal()
    with running_proxy(margin_s=2) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key)  # default retries: must not retry
        first = client.messages.with_raw_response.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        assert first.headers["x-byollm-route"].startswith("bedrock:")
        time.sleep(2.5)  # now inside the margin: treated as expired
        sent_before = len(_bedrock_keys(stack))
        with httpx.Client(base_url=proxy.url, headers={"x-api-key": proxy.key}) as raw_client:
            refused = raw_client.post("/v1/messages", json={"model": BEDROCK_MODEL, "max_tokens": 20, "messages": HI})
        assert refused.status_code == 401
        assert refused.headers["x-should-retry"] == "false"
        body = refused.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
        assert body["error"]["byollm"]["code"] == "local_credentials_expired"
        assert "aws login" in body["error"]["message"]
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.key)
        with pytest.raises(openai.AuthenticationError) as caught:
            oa.chat.completions.create(model=BEDROCK_MODEL, messages=HI)  # type: ignore[arg-type]
        assert caught.value.code == "local_credentials_expired"
        # a direct-only model needs no AWS credentials: it still works, and sends none
        gpt = oa.chat.completions.with_raw_response.create(model="gpt-5", messages=HI)  # type: ignore[arg-type]
        assert gpt.headers["x-byollm-route"].startswith("openai:")
        assert len(_bedrock_keys(stack)) == sent_before, "no request went out with expired credentials"
        said = proxy.said()  # the commands stand alone on their lines, ready to paste (issue 16 item 7)
        assert "AWS session expired" in said
        assert "\n    aws login --profile sim-process\n" in said
        assert "\n    byollm config set auto_refresh true" in said
        # the offer: turn auto-refresh on; the running proxy picks it up on the next request
        save_config(set_value(load_config(), "auto_refresh", "true"))
        again = client.messages.with_raw_response.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        assert again.headers["x-byollm-route"].startswith("bedrock:")
        assert "auto-refresh is now on" in proxy.said()


def test_login_session_that_can_no_longer_refresh(tmp_path: Path, stack: Stack, team: Team,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # 120 s credentials sit inside botocore's mandatory window: every snapshot refreshes through sign-in
    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-login", auto_refresh=True,
                    login_credential_duration_s=120)
    stack.clear_journal()
    with running_proxy() as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key)
        ok = client.messages.with_raw_response.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        assert ok.headers["x-byollm-route"].startswith("bedrock:")
        assert any(e["path"] == "/signin/v1/token" for e in stack.journal()), "refreshed through sign-in"
        ended = stack.sim_http.post("/signin/_sim/end-sessions", json={"user": DEV_USER})
        assert ended.json()["ended"] >= 1
        sent_before = len(_bedrock_keys(stack))
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert "aws login" in str(caught.value)
        assert len(_bedrock_keys(stack)) == sent_before
        said = proxy.said()
        assert "\n    aws login --profile sim-login" in said
        assert "byollm config set auto_refresh true" not in said  # it is on already


def test_long_term_keys_are_flagged_and_refused_by_default(tmp_path: Path, stack: Stack, team: Team,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from byollm.client.proxy import ProxyState, describe_startup

    make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-long-term", auto_refresh=True)
    with running_proxy() as proxy:
        state = ProxyState(proxy.url, proxy.ctx.attacher, proxy.key, proxy.lines.append)  # type: ignore[attr-defined]
        startup = "\n".join(describe_startup(state))
        assert "LONG-TERM" in startup
        assert "refuses them unless your team allows them" in startup
        client = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key)
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            client.messages.create(model=BEDROCK_MODEL, max_tokens=20, messages=HI)
        assert caught.value.response.headers["x-byollm-error-code"] == "long_term_credentials_refused"
        assert caught.value.response.headers["x-should-retry"] == "false"


def test_auto_refresh_off_picks_up_a_new_aws_login_without_refreshing(tmp_path: Path, stack: Stack, team: Team,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from byollm.client.aws import AwsCredentialSource, CredentialsExpiredError
    from byollm.sim import profiles

    env = make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-login", auto_refresh=False,
                          login_credential_duration_s=3)
    source = AwsCredentialSource(auto_refresh=False)
    stack.clear_journal()
    with pytest.raises(CredentialsExpiredError) as caught:
        source.snapshot()
    assert caught.value.command == "aws login --profile sim-login"
    assert not source.reload_if_signed_in_again(), "nothing changed on disk yet"
    assert not [e for e in stack.sim_http.get("/_sim/requests").json()["requests"]
                if e["path"].startswith("/signin/v1")], "auto-refresh off: botocore never refreshed"
    # what `aws login` does: a new session in the login cache
    profiles.write_aws_profiles(env.root / "aws", stack.sim.url, user=DEV_USER, login_credential_duration_s=900)
    assert source.reload_if_signed_in_again()
    snapshot = source.snapshot()
    assert snapshot.method == "login"
    assert snapshot.session_token
