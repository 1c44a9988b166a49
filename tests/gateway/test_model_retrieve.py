"""``GET /v1/models/{id}``: what both official SDKs' ``models.retrieve`` ask, answered in their shape; a name
the team cannot use is a 404 naming the ones it can."""

from __future__ import annotations

import anthropic
import openai
import pytest

from support.stack import Stack


def test_the_sdks_retrieve_a_model_the_team_can_use(stack: Stack) -> None:
    team = stack.new_team()
    listed = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0).models.list().data
    wanted = listed[0].id
    one = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0).models.retrieve(wanted)
    assert one.id == wanted and one.type == "model" and one.display_name
    same = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=team.token, max_retries=0).models.retrieve(wanted)
    assert same.id == wanted and same.object == "model"


def test_an_unknown_model_is_a_404_naming_the_usable_ones(stack: Stack) -> None:
    team = stack.new_team()
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=team.token, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("claude-imaginary-9")
    assert missing.value.response.headers["x-byollm-error-code"] == "model_not_found"
    usable = [m.id for m in client.models.list().data]
    assert usable and all(name in str(missing.value) for name in usable[:3])
