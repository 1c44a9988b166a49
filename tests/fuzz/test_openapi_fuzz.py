"""Schemathesis against the running gateway's own OpenAPI document: no 5xx, and every answer documented.

Why over HTTP against a real server (not the ASGI app in-process): the fuzzer then meets exactly what a
client meets, the body-size limit, the request-id middleware and the error renderer included. Why one pytest
item per operation, collected from the app's document: a route added later is fuzzed without anyone listing
it here, and a failure names its operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from byollm.api.app import create_app
from byollm.api.frontends.anthropic_messages import FIELDS as MESSAGES_FIELDS
from byollm.api.frontends.openai_chat import FIELDS as CHAT_FIELDS
from byollm.settings import Settings
from support.stack import DEFAULT_MODELS, Stack, running_stack

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15  # per operation; with derandomize, the same cases every run
METHODS = {"get", "put", "post", "patch", "delete"}


def _realistic_bodies(path: str) -> st.SearchStrategy[dict[str, Any]]:
    """Inference bodies a real client would send, with enabled models: random ``model`` strings never get past
    the policy, so without these the fuzzer would never reach a provider."""
    text = st.text(min_size=1, max_size=40)
    content = st.one_of(text, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}),
                                       min_size=1, max_size=2))
    messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": content}),
                        min_size=1, max_size=3)
    model = st.sampled_from([*DEFAULT_MODELS, "auto"])
    if path.startswith("/v1/responses"):  # the Responses API: input (a string or message items) instead of messages
        items = st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": text}), min_size=1, max_size=2)
        return st.fixed_dictionaries({"model": model, "input": st.one_of(text, items),
                                      "max_output_tokens": st.integers(1, 64)},
                                     optional={"stream": st.booleans(), "instructions": text})
    base = {"model": model, "messages": messages, "max_tokens": st.integers(1, 64)}
    optional: dict[str, st.SearchStrategy[Any]] = {"system": text} if path.startswith("/v1/messages") else {}
    if path != "/v1/messages/count_tokens":
        optional["stream"] = st.booleans()
    return st.fixed_dictionaries(base, optional=optional)


_WRONG_TYPES = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_KNOWN_FIELDS = {"/v1/messages": sorted(MESSAGES_FIELDS), "/v1/messages/count_tokens": sorted(MESSAGES_FIELDS),
                 "/v1/chat/completions": sorted(CHAT_FIELDS)}


def _wrong_type_bodies(path: str) -> st.SearchStrategy[dict[str, Any]]:
    """A realistic body with one field the front end knows set to a value of any JSON type (issue 14: wrong
    types answered 500); whatever the value, the answer must be documented and never a 5xx."""
    known = _KNOWN_FIELDS.get(path)
    if not known:
        return _realistic_bodies(path)
    return st.tuples(_realistic_bodies(path), st.sampled_from(known), _WRONG_TYPES).map(
        lambda drawn: {**drawn[0], drawn[1]: drawn[2]})


def _operations() -> list[tuple[str, str]]:
    """Every operation the app documents (building the app touches no disk or network; its lifespan does)."""
    document = create_app(Settings.for_data_dir(Path("/nonexistent-byollm-fuzz"))).openapi()
    return sorted((method.upper(), path) for path, item in document["paths"].items() for method in item
                  if method in METHODS)


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("fuzz"))) as running:
        yield running


@pytest.fixture(scope="module")
def pinned(stack: Stack) -> dict[str, str]:
    """Path parameters that name real objects of a team the operator administers, so positive cases reach the
    handlers instead of stopping at ``not_found``. The inference team is a different one: what the fuzzer does
    to this team's policy and settings cannot change what inference cases meet."""
    team = stack.new_team()
    spare = stack.admin.post(f"/teams/{team.uid}/members", json={"email": "spare@fuzz.test"}).json()
    agent = stack.admin.post(f"/teams/{team.uid}/agents", json={"name": "fuzzed"}).json()
    token = stack.admin.post(f"/teams/{team.uid}/tokens", json={"name": "spare"}).json()
    return {"team_uid": team.uid, "user_uid": spare["user_uid"], "agent_uid": agent["uid"],
            "token_uid": token["details"]["uid"]}


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(stack.url + "/api/openapi.json")


@pytest.fixture(scope="module")
def inference_headers(stack: Stack) -> dict[str, str]:
    team = stack.new_team()
    return {"authorization": f"Bearer {team.token}", **stack.delegated_headers(duration_s=3600)}


def test_the_served_document_lists_the_collected_operations(api_schema: Any) -> None:
    served = sorted((op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations()))
    assert served == OPERATIONS
    assert len(OPERATIONS) >= 40


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_openapi(method: str, path: str, stack: Stack, api_schema: Any,
                                           pinned: dict[str, str], inference_headers: dict[str, str]) -> None:
    operation = api_schema[path][method]
    path_names = {p.name for p in operation.path_parameters}
    pins = {name: value for name, value in pinned.items() if name in path_names}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pins or None),
                  operation.as_strategy(GenerationMode.NEGATIVE)]
    if method == "POST" and path.startswith("/v1/"):
        strategies.append(_wrong_type_bodies(path).flatmap(
            lambda body: operation.as_strategy(GenerationMode.POSITIVE, body=body)))
        strategies.append(_realistic_bodies(path).flatmap(
            lambda body: operation.as_strategy(GenerationMode.POSITIVE, body=body)))
    cases = st.one_of(strategies)
    headers = (inference_headers if "inference" in operation.tags else {"authorization": f"Bearer {stack.operator}"})

    statuses: list[int] = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def fuzz(case: schemathesis.Case[Any]) -> None:
        # a fresh connection per case: against an in-process server, a kept-alive connection waits ~40 ms per request
        response = case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS, timeout=30)
        statuses.append(response.status_code)

    fuzz()
    if method == "POST" and path.startswith("/v1/"):  # the realistic bodies must reach a provider and succeed
        assert 200 in statuses, sorted(set(statuses))
