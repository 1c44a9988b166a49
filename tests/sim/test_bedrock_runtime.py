"""Bedrock Runtime driven by unmodified boto3: auth, IAM, model resolution, bodies, streams, faults, quotas."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError

from byollm.sim import SimServer
from sim.sim_support import (
    ACCOUNT,
    HAIKU,
    OPUS41,
    OPUS47,
    OTHER_KEY,
    SONNET46,
    ClientFactory,
    Issuer,
    claude_body,
)


def _text(resp: dict[str, Any]) -> str:
    return str(json.loads(resp["body"].read())["content"][0]["text"])


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def test_invoke_foundation_model(client: ClientFactory) -> None:
    resp = client("bedrock-runtime").invoke_model(modelId=HAIKU, body=claude_body("ping"))
    body = json.loads(resp["body"].read())
    assert body["type"] == "message"
    assert body["content"][0]["text"].startswith(f"[bedrock:{HAIKU}]")
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == body["usage"]["input_tokens"]
    assert int(headers["x-amzn-bedrock-output-token-count"]) == body["usage"]["output_tokens"]


@pytest.mark.parametrize(
    ("model_id", "region"),
    [
        (f"us.{OPUS47}", "us-west-2"),
        (f"eu.{SONNET46}", "eu-west-1"),
        (f"apac.{HAIKU}", "ap-south-1"),
        (f"global.{OPUS47}", "ap-northeast-1"),
        (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{OPUS41}", "us-east-1"),
        (f"arn:aws:bedrock:eu-central-1::foundation-model/{HAIKU}", "eu-central-1"),
    ],
)
def test_profiles_and_arns(client: ClientFactory, model_id: str, region: str) -> None:
    text = _text(client("bedrock-runtime", region=region).invoke_model(modelId=model_id, body=claude_body()))
    assert text.startswith("[bedrock:anthropic.")


def test_model_without_on_demand_needs_a_profile(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")
    with pytest.raises(runtime.exceptions.ValidationException) as info:
        runtime.invoke_model(modelId=OPUS47, body=claude_body())
    assert str(info.value.response["Error"]["Message"]) == (
        f"Invocation of model ID {OPUS47} with on-demand throughput isn\u2019t supported. Retry your request with "
        "the ID or ARN of an inference profile that contains this model."
    )


@pytest.mark.parametrize(
    ("model_id", "region"),
    [
        (OPUS41, "eu-west-1"),  # not offered in the region
        (f"eu.{OPUS41}", "eu-west-1"),  # no such profile
        (f"us.{HAIKU}", "eu-west-1"),  # profile not callable from this region
        ("anthropic.claude-nonexistent-v1:0", "us-east-1"),
    ],
)
def test_invalid_model_identifier(client: ClientFactory, model_id: str, region: str) -> None:
    runtime = client("bedrock-runtime", region=region)
    with pytest.raises(runtime.exceptions.ValidationException) as info:
        runtime.invoke_model(modelId=model_id, body=claude_body())
    assert info.value.response["Error"]["Message"] == "The provided model identifier is invalid."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"stream": True}, "extraneous key [stream] is not permitted"),
        ({"model": "claude"}, "extraneous key [model] is not permitted"),
    ],
)
def test_rejected_body_keys(client: ClientFactory, extra: dict[str, Any], fragment: str) -> None:
    runtime = client("bedrock-runtime")
    with pytest.raises(runtime.exceptions.ValidationException) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body(**extra))
    assert fragment in info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "betas",
    [
        ["claude-code-20250219"],
        ["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"],
        ["mcp-servers-2025-12-04"],
        ["prompt-caching-scope-2026-01-05"],
        [7],
    ],
)
def test_beta_outside_bedrocks_list_is_invalid(client: ClientFactory, betas: list[Any]) -> None:
    """Real Bedrock answers 400 "invalid beta flag" for any anthropic_beta value it does not document, on both
    InvokeModel and the streaming call (anthropics/claude-code issues 49370, 56595)."""
    runtime = client("bedrock-runtime")
    for call in (runtime.invoke_model, runtime.invoke_model_with_response_stream):
        with pytest.raises(runtime.exceptions.ValidationException) as info:
            call(modelId=HAIKU, body=claude_body(anthropic_beta=betas))
        assert info.value.response["Error"]["Message"] == "invalid beta flag"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_documented_betas_are_accepted(client: ClientFactory) -> None:
    from byollm.sim.bedrock_runtime import BEDROCK_ANTHROPIC_BETAS

    runtime = client("bedrock-runtime")
    resp = runtime.invoke_model(modelId=HAIKU, body=claude_body(anthropic_beta=sorted(BEDROCK_ANTHROPIC_BETAS)))
    assert _text(resp)


def test_defer_loading_on_a_custom_tool_is_refused(client: ClientFactory) -> None:
    """Bedrock refuses ``defer_loading`` on a custom tool, naming the tool's index (claude-code issue 82549)."""
    runtime = client("bedrock-runtime")
    tool = {"name": "lookup", "description": "d", "input_schema": {"type": "object", "properties": {}}}
    body = claude_body(tools=[tool, {**tool, "name": "later", "defer_loading": True}])
    with pytest.raises(runtime.exceptions.ValidationException) as info:
        runtime.invoke_model(modelId=HAIKU, body=body)
    assert info.value.response["Error"]["Message"] == "tools.1.custom.defer_loading: Extra inputs are not permitted"
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body(tools=[tool])))


def test_missing_anthropic_version(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")
    body = json.dumps({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(runtime.exceptions.ValidationException) as info:
        runtime.invoke_model(modelId=HAIKU, body=body)
    assert "required key [anthropic_version] not found" in info.value.response["Error"]["Message"]


def test_bad_signature(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime", creds=("AKIASIMDEV0000000001", "not-the-secret" * 3))
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_error_headers_follow_the_rest_json_convention(sim: SimServer) -> None:
    resp = httpx.post(f"{sim.url}/model/{HAIKU}/invoke", content=claude_body())
    assert resp.status_code == 403
    assert resp.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException:")
    assert resp.json() == {"message": "Missing Authentication Token"}


def test_clock_skew_is_refused(sim: SimServer, client: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.state, "clock", lambda: time.time() + 3600)
    runtime = client("bedrock-runtime")
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "InvalidSignatureException"
    assert "Signature expired" in info.value.response["Error"]["Message"]


def test_unknown_access_key(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime", creds=("AKIAUNKNOWNUNKNOWN00", "x" * 40))
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "UnrecognizedClientException"


def test_tampered_body_fails_signature(sim: SimServer, client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")

    def tamper(request: Any, **_: Any) -> None:
        request.body = claude_body("tampered").encode()
        request.headers["Content-Length"] = str(len(request.body))

    runtime.meta.events.register_last("before-send.bedrock-runtime.InvokeModel", tamper)
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "InvalidSignatureException"


def test_expired_session_token(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> None:
    creds = client("sts").assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/byollm-team", RoleSessionName="run-1", WebIdentityToken=issuer.token()
    )["Credentials"]
    runtime = client("bedrock-runtime", creds=(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]))
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))
    admin.post(f"/credentials/{creds['AccessKeyId']}/expire").raise_for_status()
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "ExpiredTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_session_token(client: ClientFactory, issuer: Issuer) -> None:
    creds = client("sts").get_session_token()["Credentials"]
    runtime = client("bedrock-runtime", creds=(creds["AccessKeyId"], creds["SecretAccessKey"], "forged-token"))
    with pytest.raises(ClientError) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _code(info.value) == "UnrecognizedClientException"


def _agent_credentials(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> tuple[str, str, str]:
    admin.post(
        f"/accounts/{ACCOUNT}/web-identity-trust",
        json={"issuer": issuer.url, "role": "byollm-agent", "subject": "*"},
    ).raise_for_status()
    creds = client("sts").assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/byollm-agent", RoleSessionName="agent", WebIdentityToken=issuer.token()
    )["Credentials"]
    return creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]


def test_model_outside_the_policy_is_denied(client: ClientFactory, issuer: Issuer, admin: httpx.Client) -> None:
    runtime = client("bedrock-runtime", creds=_agent_credentials(client, issuer, admin))
    assert _text(runtime.invoke_model(modelId=f"us.{HAIKU}", body=claude_body()))  # allowed by byollm-agent
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=f"arn:aws:bedrock:us-east-1::foundation-model/{OPUS41}", body=claude_body())
    message = info.value.response["Error"]["Message"]
    assert "assumed-role/byollm-agent/agent is not authorized to perform: bedrock:InvokeModel" in message
    assert f"foundation-model/{OPUS41}" in message


def test_profile_needs_model_arn_in_every_destination_region(
    sim: SimServer, client: ClientFactory, admin: httpx.Client
) -> None:
    resources = [
        f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/*",
        f"arn:aws:bedrock:us-east-1::foundation-model/{OPUS47}",
        f"arn:aws:bedrock:us-east-2::foundation-model/{OPUS47}",
    ]

    def policy() -> dict[str, Any]:
        statement = {"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": resources}
        return {"Version": "2012-10-17", "Statement": [statement]}

    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/policies/invoke-claude", json=policy()).raise_for_status()
    runtime = client("bedrock-runtime", creds=_mint_role_session(sim, "byollm-team"))
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=f"us.{OPUS47}", body=claude_body())
    assert f"arn:aws:bedrock:us-west-2::foundation-model/{OPUS47}" in info.value.response["Error"]["Message"]
    resources.append(f"arn:aws:bedrock:us-west-2::foundation-model/{OPUS47}")
    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/policies/invoke-claude", json=policy()).raise_for_status()
    assert _text(runtime.invoke_model(modelId=f"us.{OPUS47}", body=claude_body()))


def _mint_role_session(sim: SimServer, role: str) -> tuple[str, str, str]:
    """Credentials for a role session straight from the simulator state (trust is tested in test_sts)."""
    creds = sim.state.issue_session_credentials(
        account_id=ACCOUNT, principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/direct", duration_s=900
    )
    return creds.access_key_id, creds.secret_access_key, creds.session_token


def test_global_profile_needs_the_regionless_arn(sim: SimServer, client: ClientFactory, admin: httpx.Client) -> None:
    resources = [f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/*", "arn:aws:bedrock:?*::foundation-model/*"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": resources}],
    }
    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/policies/invoke-claude", json=policy).raise_for_status()
    runtime = client("bedrock-runtime", creds=_mint_role_session(sim, "byollm-team"))
    assert _text(runtime.invoke_model(modelId=f"us.{SONNET46}", body=claude_body()))
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=f"global.{SONNET46}", body=claude_body())
    assert f"arn:aws:bedrock:::foundation-model/{SONNET46}" in info.value.response["Error"]["Message"]


def test_explicit_deny_wins(sim: SimServer, client: ClientFactory, admin: httpx.Client) -> None:
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "bedrock:Invoke*", "Resource": f"*{HAIKU}"}],
    }
    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/policies/deny-haiku", json=deny).raise_for_status()
    runtime = client("bedrock-runtime", creds=_mint_role_session(sim, "byollm-team"))
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert "explicit deny" in info.value.response["Error"]["Message"]


def test_requested_region_condition_sees_each_destination(
    sim: SimServer, client: ClientFactory, admin: httpx.Client
) -> None:
    statement = {
        "Effect": "Allow",
        "Action": "bedrock:InvokeModel",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-east-2"]}},
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    admin.put(f"/accounts/{ACCOUNT}/roles/byollm-team/policies/invoke-claude", json=policy).raise_for_status()
    runtime = client("bedrock-runtime", creds=_mint_role_session(sim, "byollm-team"))
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=f"us.{HAIKU}", body=claude_body())  # routes to us-west-2 too
    assert "us-west-2" in info.value.response["Error"]["Message"]


def test_model_access_never_granted(client: ClientFactory, admin: httpx.Client) -> None:
    runtime = client("bedrock-runtime", creds=OTHER_KEY)
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))
    with pytest.raises(runtime.exceptions.AccessDeniedException) as info:
        runtime.invoke_model(modelId=f"us.{SONNET46}", body=claude_body())
    assert info.value.response["Error"]["Message"] == "You don't have access to the model with the specified model ID."
    admin.put(f"/accounts/444455556666/model-access/{SONNET46}").raise_for_status()
    assert _text(runtime.invoke_model(modelId=f"us.{SONNET46}", body=claude_body()))


def test_application_inference_profile(client: ClientFactory, sim: SimServer) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/simappsonnet1"
    runtime = client("bedrock-runtime")
    assert _text(runtime.invoke_model(modelId=arn, body=claude_body())).startswith(f"[bedrock:{SONNET46}]")
    log = sim.state.invocations.entries()[-1]
    assert log["modelId"] == arn
    assert log["foundationModelId"] == SONNET46
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.invoke_model(modelId=arn.replace("simappsonnet1", "missing"), body=claude_body())


def test_application_profile_over_a_model_created_at_run_time(client: ClientFactory, admin: httpx.Client) -> None:
    source = f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:inference-profile/eu.{OPUS47}"
    made = admin.put(
        f"/accounts/{ACCOUNT}/application-profiles/teamopus", json={"region": "eu-west-1", "source": source}
    )
    arn = made.json()["arn"]
    assert arn == f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:application-inference-profile/teamopus"
    runtime = client("bedrock-runtime", region="eu-west-1")
    assert _text(runtime.invoke_model(modelId=arn, body=claude_body())).startswith(f"[bedrock:{OPUS47}]")
    haiku_app = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/simapphaiku01"
    assert _text(client("bedrock-runtime").invoke_model(modelId=haiku_app, body=claude_body()))
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):  # profiles live in their own region
        client("bedrock-runtime").invoke_model(modelId=arn.replace("eu-west-1", "us-east-1"), body=claude_body())


def test_other_accounts_application_profile_is_denied(client: ClientFactory) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/simappsonnet1"
    runtime = client("bedrock-runtime", creds=OTHER_KEY)
    with pytest.raises(runtime.exceptions.AccessDeniedException):
        runtime.invoke_model(modelId=arn, body=claude_body())


def test_stream_yields_chunks_with_invocation_metrics(client: ClientFactory) -> None:
    resp = client("bedrock-runtime").invoke_model_with_response_stream(
        modelId=f"us.{HAIKU}", body=claude_body("stream me")
    )
    assert resp["contentType"] == "application/json"
    events = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "message_stop"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] > 0
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text.startswith(f"[bedrock:{HAIKU}]")


def test_stream_throttled_mid_stream(client: ClientFactory, admin: httpx.Client) -> None:
    admin.post(
        "/faults", json={"service": "bedrock", "error": "ThrottlingException", "after_events": 3, "count": 1}
    ).raise_for_status()
    runtime = client("bedrock-runtime")
    # A mid-stream rule does not touch non-streaming calls.
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))
    resp = runtime.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as info:
        seen.extend(resp["body"])
    assert len(seen) == 3
    assert info.value.response["Error"]["Code"] == "throttlingException"
    # The rule was used up.
    assert len(list(runtime.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())["body"])) > 3


def test_stream_delayed_mid_stream_keeps_the_events_already_sent(client: ClientFactory, admin: httpx.Client) -> None:
    """A delay after K events stalls the open stream (not the response head), then ends it with an error."""
    admin.post(
        "/faults", json={"service": "bedrock", "delay_s": 0.3, "after_events": 2, "count": 1}
    ).raise_for_status()
    started = time.monotonic()
    resp = client("bedrock-runtime").invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as info:
        seen.extend(resp["body"])
    assert len(seen) == 2
    assert time.monotonic() - started >= 0.3
    assert info.value.response["Error"]["Code"] == "internalServerException"


def test_fault_before_response(client: ClientFactory, admin: httpx.Client) -> None:
    admin.post(
        "/faults",
        json={"service": "bedrock", "model": "*haiku*", "error": "ServiceUnavailableException", "count": 2},
    ).raise_for_status()
    runtime = client("bedrock-runtime")
    for _ in range(2):
        with pytest.raises(runtime.exceptions.ServiceUnavailableException):
            runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))


def test_fault_reset_drops_the_connection(client: ClientFactory, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "bedrock", "reset": True, "count": 1}).raise_for_status()
    runtime = client("bedrock-runtime")
    with pytest.raises(Exception) as info:  # noqa: PT011 - botocore raises one of several transport errors
        runtime.invoke_model(modelId=HAIKU, body=claude_body())["body"].read()
    assert not isinstance(info.value, ClientError)


def test_fault_timeout_hangs_until_the_client_gives_up(sim: SimServer, admin: httpx.Client) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ReadTimeoutError

    admin.post("/faults", json={"service": "bedrock", "timeout": True, "count": 1}).raise_for_status()
    runtime = boto3.client(
        "bedrock-runtime",
        endpoint_url=sim.url,
        region_name="us-east-1",
        aws_access_key_id="AKIASIMDEV0000000001",
        aws_secret_access_key="simDevSecretKey0000000000000000000000001",
        config=Config(read_timeout=0.5, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ReadTimeoutError):
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert _text(runtime.invoke_model(modelId=HAIKU, body=claude_body()))


def test_fault_delay(client: ClientFactory, admin: httpx.Client) -> None:
    admin.post("/faults", json={"service": "bedrock", "delay_s": 0.3, "count": 1}).raise_for_status()
    started = time.monotonic()
    assert _text(client("bedrock-runtime").invoke_model(modelId=HAIKU, body=claude_body()))
    assert time.monotonic() - started >= 0.3


def test_quota_throttles(client: ClientFactory, admin: httpx.Client) -> None:
    admin.put(f"/accounts/{ACCOUNT}/quotas/{HAIKU}", json={"requests_per_minute": 2}).raise_for_status()
    runtime = client("bedrock-runtime")
    runtime.invoke_model(modelId=HAIKU, body=claude_body())
    runtime.invoke_model(modelId=HAIKU, body=claude_body())
    with pytest.raises(runtime.exceptions.ThrottlingException) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body())
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # Other models keep their own window.
    assert _text(runtime.invoke_model(modelId=f"us.{SONNET46}", body=claude_body()))


def test_token_quota_throttles(client: ClientFactory, admin: httpx.Client) -> None:
    admin.put(f"/accounts/{ACCOUNT}/quotas/*", json={"tokens_per_minute": 5}).raise_for_status()
    runtime = client("bedrock-runtime")
    with pytest.raises(runtime.exceptions.ThrottlingException) as info:
        runtime.invoke_model(modelId=HAIKU, body=claude_body("a b c d e f g h i j k"))
    assert "tokens" in info.value.response["Error"]["Message"]


def test_converse_and_tool_use(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")
    resp = runtime.converse(
        modelId=f"global.{SONNET46}",
        messages=[{"role": "user", "content": [{"text": "use get_weather for Paris"}]}],
        toolConfig={
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    )
    assert resp["stopReason"] == "tool_use"
    tool_use = resp["output"]["message"]["content"][-1]["toolUse"]
    assert tool_use["name"] == "get_weather"
    assert resp["usage"]["totalTokens"] == resp["usage"]["inputTokens"] + resp["usage"]["outputTokens"]


def test_converse_stream(client: ClientFactory) -> None:
    resp = client("bedrock-runtime").converse_stream(
        modelId=f"us.{HAIKU}", messages=[{"role": "user", "content": [{"text": "hi"}]}]
    )
    kinds = [next(iter(e)) for e in resp["stream"]]
    assert kinds[0] == "messageStart"
    assert kinds[-2:] == ["messageStop", "metadata"]
    assert "contentBlockDelta" in kinds


def test_count_tokens_matches_usage(client: ClientFactory) -> None:
    runtime = client("bedrock-runtime")
    body = claude_body("count these tokens please")
    counted = runtime.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body}})["inputTokens"]
    usage = json.loads(runtime.invoke_model(modelId=HAIKU, body=body)["body"].read())["usage"]
    assert counted == usage["input_tokens"]


def test_request_metadata_reaches_the_invocation_log(client: ClientFactory, admin: httpx.Client) -> None:
    runtime = client("bedrock-runtime", region="us-west-2")
    runtime.invoke_model(modelId=HAIKU, body=claude_body(), requestMetadata=json.dumps({"team": "team-1"}))
    entries = admin.get("/invocations").json()["invocations"]
    last = entries[-1]
    assert last["requestMetadata"] == {"team": "team-1"}
    assert last["accountId"] == ACCOUNT
    assert last["region"] == "us-west-2"
    assert last["identity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/byollm-dev"
    assert last["input"]["inputTokenCount"] > 0


def test_streaming_latency_is_applied(client: ClientFactory, admin: httpx.Client) -> None:
    admin.put("/behaviour", json={"time_to_first_token_s": 0.2, "per_token_s": 0.0}).raise_for_status()
    started = time.monotonic()
    resp = client("bedrock-runtime").invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())
    next(iter(resp["body"]))
    assert time.monotonic() - started >= 0.2
