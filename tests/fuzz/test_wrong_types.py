"""Hypothesis: every known field of both inference APIs given a JSON value of any type, against a real
server and the simulator. Nothing answers 500; what is refused is a 400 ``invalid_request`` in the caller's
API shape naming a field; and a refused body never reached an upstream (the simulator's journal)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm.api.frontends.anthropic_messages import FIELDS as MESSAGES_FIELDS
from byollm.api.frontends.openai_chat import FIELDS as CHAT_FIELDS
from support.stack import DIRECT_MODELS, Stack, running_stack

HELLO = [{"role": "user", "content": "hi"}]
BASES: dict[str, dict[str, Any]] = {
    "/v1/messages": {"model": "claude-opus-4-7", "max_tokens": 16, "messages": HELLO},
    "/v1/chat/completions": {"model": "gpt-5", "messages": HELLO},
}
FIELDS = {"/v1/messages": sorted(MESSAGES_FIELDS), "/v1/chat/completions": sorted(CHAT_FIELDS)}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["type", "text", "role", "content", "name", "x"]),
                                             inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("wrong-types"))) as running:
        yield running


@pytest.mark.parametrize("path", sorted(BASES))
def test_any_value_in_any_known_field_never_answers_500(stack: Stack, path: str) -> None:
    team = stack.new_team(DIRECT_MODELS)  # no AWS session is sent: the direct routes serve
    statuses: list[int] = []
    with httpx.Client(base_url=stack.url, timeout=30, headers={"authorization": f"Bearer {team.token}"}) as http:

        @settings(max_examples=60, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(field=st.sampled_from(FIELDS[path]), value=json_values, stream=st.booleans())
        def fuzz(field: str, value: Any, stream: bool) -> None:
            stack.clear_journal()
            body = {**BASES[path], "stream": stream, field: value}
            r = http.post(path, json=body)
            statuses.append(r.status_code)
            assert r.status_code < 500, (body, r.text)
            if r.status_code == 400:
                payload = r.json()
                error = payload["error"]
                if path == "/v1/messages":
                    assert payload["type"] == "error" and error["type"] == "invalid_request_error"
                    code = error["byollm"]["code"]
                else:
                    code = error["code"]
                assert code in ("invalid_request", "unsupported_by_route"), r.text
                if code == "invalid_request" and r.headers.get("x-byollm-route") is None:
                    assert stack.journal() == [] or "answered" in error["message"], r.text

        fuzz()
    assert 400 in statuses and 200 in statuses, sorted(set(statuses))
