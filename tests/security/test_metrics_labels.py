"""``/metrics`` label values come only from closed sets, whatever the requests said; ``BYOLLM_METRICS_TOKEN``
puts the scrape behind a bearer token. Before this, a request's model name became a label value on the
public ``/metrics``, and 1 MB names grew it by 8 MB for good."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.catalog.loader import load_catalog
from byollm.control.bootstrap import bootstrap_operator
from byollm.errors import ErrorClass
from byollm.gateway.metrics import APIS, HOSTS, OTHER, GatewayMetrics
from byollm.settings import Settings

KEK = "CwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCws="  # 32 bytes of 0x0b: tests only
CODES = {c.code for c in ErrorClass} | {"ok", OTHER}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    settings = Settings.for_data_dir(Path(tmp_path_factory.mktemp("metrics")), kek=KEK, run_worker_embedded=False,
                                     max_body_bytes=4 * 1024 * 1024)
    boot = asyncio.run(bootstrap_operator(settings, email="op@metrics.test", team_name="metrics"))
    with ServerThread(create_app(settings)) as running:
        yield running.url, boot.token


def _hostile(client: httpx.Client, name: str) -> None:
    client.post("/v1/messages", json={"model": name, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    client.post("/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "x"}]})


def _check_closed(text: str) -> int:
    models = set(load_catalog().models) | {OTHER}
    samples = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            samples += 1
            assert labels.get("api", "anthropic") in APIS, labels
            assert labels.get("host", "none") in HOSTS | {OTHER}, labels
            assert labels.get("model", OTHER) in models, labels
            assert labels.get("code", "ok") in CODES, labels
            assert len(labels.get("route", "")) <= 256, labels
    return samples


def test_hostile_model_names_never_become_label_values(server: tuple[str, str]) -> None:
    url, token = server
    with httpx.Client(base_url=url, timeout=60, headers={"authorization": f"Bearer {token}"}) as client:
        _hostile(client, "warm-up-" + secrets.token_hex(8))
        first = client.get("/metrics")
        assert first.status_code == 200
        for _ in range(3):
            _hostile(client, "M" * (1024 * 1024))
        for _ in range(20):
            _hostile(client, "model-" + secrets.token_hex(16))
        _hostile(client, 'x"} evil{a="b\nnewline')
        second = client.get("/metrics")
    assert b"MMMMMMMM" not in second.content and b"model-" not in second.content and b"evil" not in second.content
    assert b'model="other"' in second.content  # the hostile requests were counted, as other
    assert len(second.content) - len(first.content) < 200, (len(first.content), len(second.content))
    assert _check_closed(second.text) > 0


def test_unknown_values_map_to_other_in_every_labelled_metric() -> None:
    metrics = GatewayMetrics(models={"claude-sonnet-4-6"})
    metrics.requests.labels("anthropic", "bedrock", "claude-sonnet-4-6", "ok").inc()
    metrics.requests.labels("evil-api", "evil-host", "evil-model", "evil-code").inc()
    metrics.attempts.labels("bedrock", "bedrock:anthropic.claude-sonnet-4-6-v1:0", "ok").inc()
    metrics.attempts.labels("bedrock", "evil:" + "r" * 300, "ok").inc()
    metrics.latency.labels("evil", "evil").observe(0.1)
    metrics.overhead.labels("openai", "maybe").observe(0.1)
    text = metrics.render().decode()
    assert "evil" not in text and "rrrr" not in text and "maybe" not in text
    assert 'model="claude-sonnet-4-6"' in text and 'route="bedrock:anthropic.claude-sonnet-4-6-v1:0"' in text
    assert 'api="other",code="other",host="other",model="other"' in text


def test_a_metrics_token_guards_the_scrape(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEK, run_worker_embedded=False, metrics_token="scrape-secret")
    with ServerThread(create_app(settings)) as running:
        assert httpx.get(f"{running.url}/metrics").status_code == 401
        assert httpx.get(f"{running.url}/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        scraped = httpx.get(f"{running.url}/metrics", headers={"authorization": "Bearer scrape-secret"})
        assert scraped.status_code == 200 and b"byollm_request_log_pending" in scraped.content
    assert Settings.from_env({"BYOLLM_METRICS_TOKEN": "t"}).metrics_token == "t"
    assert "metrics_token" not in repr(Settings.from_env({"BYOLLM_METRICS_TOKEN": "t"}))
