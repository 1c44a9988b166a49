"""The typed change commands the control facade builds from a submitted mapping: a field left out of the
request is kept, while a submitted ``null`` (or ``""``) reaches the area module as a clear."""

from __future__ import annotations

from byollm.control.agents import AgentChange
from byollm.control.context import KEEP
from byollm.control.host_admin import BedrockChange


def test_agent_change_tells_a_missing_field_from_a_null() -> None:
    change = AgentChange.from_mapping({"role_arn_override": None, "tools": ["bash"]})
    assert change.role_arn_override is None
    assert change.tools == ["bash"]
    assert change.name is KEEP
    assert change.default_model is KEEP


def test_agent_change_ignores_fields_an_agent_does_not_have() -> None:
    assert AgentChange.from_mapping({"colour": "red"}) == AgentChange()


def test_bedrock_change_keeps_what_is_left_out_and_clears_what_is_null() -> None:
    change = BedrockChange.from_mapping({"endpoint_url": None, "region": None})
    assert change.endpoint_url is None
    assert change.role_arn is KEEP
    assert change.region is None  # a null region leaves the region as it is
    assert BedrockChange.from_mapping({}) == BedrockChange()
