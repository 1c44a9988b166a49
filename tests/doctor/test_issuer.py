"""Issuer unreachable: byollm's issuer URL names an address nobody serves, so AWS (the simulator's STS) cannot
fetch the discovery document and keys; the doctor finds it on its own and through the test prompt."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from byollm.errors import ErrorClass
from doctor.doctor_support import api_doctor, check
from support.oidc_stack import make_role, running_oidc_stack
from support.stack import Stack


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


DEAD = _dead_url()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_oidc_stack(Path(tmp_path_factory.mktemp("doctor-issuer")), oidc_issuer_url=DEAD) as s:
        yield s


def test_issuer_unreachable_is_named_with_the_url_and_the_remediation(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"], issuer=DEAD)
    team.bedrock(role_arn=role)
    report = api_doctor(stack, team.uid)
    issuer = check(report, "byollm.issuer")
    assert issuer["status"] == "fail" and issuer["error_class"] == "issuer_unreachable"
    assert f"the issuer {DEAD} cannot be used" in issuer["detail"]
    assert f"{DEAD}/.well-known/openid-configuration" in issuer["detail"]
    assert issuer["remediation"] == ErrorClass.ISSUER_UNREACHABLE.remediation
    prompt = check(report, "team.prompt.claude-opus-4-7")
    assert prompt["status"] == "fail" and prompt["error_class"] == "issuer_unreachable"
    assert f"{DEAD}/.well-known/openid-configuration must be reachable" in prompt["detail"]
