"""Every credential shape byollm knows is removed by every place that scrubs, through the one module.

Why a table of shapes x callers: the shapes used to live in four modules that drifted apart (the panel knew only
byollm tokens, the run scrubber only access key ids). Here each shape in ``CREDENTIAL_SHAPES`` must have a sample
(a new shape without one fails), each sample must vanish through each caller, and no other module may define
credential patterns of its own.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from byollm.client.history import looks_secret
from byollm.credentials.web_identity import _scrub as scrub_sts_message
from byollm.panel.web import scrub as scrub_panel_detail
from byollm.redact import CREDENTIAL_SHAPES, contains_credential, redact, redact_json
from byollm.runs.events import clean, clean_messages

SAMPLES: dict[str, str] = {
    "aws_key_id": "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
    "aws_secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_session_token": "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(120)).decode(),
    "jwt": "eyJhbGciOiJSUzI1NiIsImtpZCI6IksxIn0.eyJzdWIiOiJzY29wZWRfcHJpbmNpcGFsOlQxL3VzZXI6VTEifQ."
           + secrets.token_urlsafe(64),
    "byollm_token": "byo_" + secrets.token_urlsafe(32),
    "provider_key": "sk-ant-api03-" + secrets.token_urlsafe(40),
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
}
MORE: dict[str, str] = {  # other spellings of the same shapes
    "openai key": "sk-proj-" + secrets.token_urlsafe(30),
    "google key": "AIza" + secrets.token_urlsafe(30)[:35],
    "proxy key": "byollm-proxy-" + secrets.token_urlsafe(24),
    "simulator secret": secrets.token_urlsafe(30)[:39] + "A",
    "long-term key id": "AKIAIOSFODNN7EXAMPLE",
}
HARMLESS = [
    "git commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a 40-hex SHA has no capital
    "model anthropic.claude-sonnet-4-5-20250929-v1:0 in us-east-1",
    "run_01JD8Z3Q6M4XK2V9 finished; request req_0193a1b2c3d4e5f6a7b8c9d0e1f2",
    "the quick brown fox jumps over the lazy dog",
    "arn:aws:iam::123456789012:role/byollm-cloud-agents",
]


def every_sample() -> list[tuple[str, str]]:
    return [*SAMPLES.items(), *MORE.items()]


def test_every_shape_has_a_sample() -> None:
    assert set(SAMPLES) == set(CREDENTIAL_SHAPES)


Caller = Callable[[str], str]
CALLERS: dict[str, Caller] = {
    "redact": redact,
    "request log content": lambda text: repr(redact_json({"request": {"messages": [{"content": text}]}})[0]),
    "run event": lambda text: repr(clean({"output": f"$ env\nAWS_SECRET_ACCESS_KEY={text}\n"})),
    "run transcript": lambda text: repr(clean_messages([{"role": "user", "content": [{"text": text}]}])),
    "panel error detail": lambda text: scrub_panel_detail(f"invalid value {text!r} for field name"),
    "STS message": lambda text: scrub_sts_message(f"Not authorized to perform with {text}", "unrelated"),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize(("shape", "value"), every_sample())
def test_each_caller_removes_each_shape(caller: str, shape: str, value: str) -> None:
    out = CALLERS[caller](value)
    assert value not in out, f"{caller} kept a {shape}"
    # nor a recognisable piece of it
    assert value[4:24] not in out, f"{caller} kept part of a {shape}"


@pytest.mark.parametrize(("shape", "value"), every_sample())
def test_the_chat_history_refuses_each_shape(shape: str, value: str) -> None:
    assert looks_secret(f"please use {value} for this")
    assert contains_credential(value)


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text
    assert redact_json({"text": text}) == ({"text": text}, False)


def test_credential_named_fields_are_redacted_whatever_their_value() -> None:
    scrubbed, redacted = redact_json({"headers": {"a": "b"}, "X-Amz-Security-Token": "x", "nested": [
        {"Authorization": "Bearer abc", "x-byollm-aws-secret-access-key": "y", "keep": "z"}]})
    assert redacted
    assert scrubbed == {"headers": "[redacted]", "X-Amz-Security-Token": "[redacted]", "nested": [
        {"Authorization": "[redacted]", "x-byollm-aws-secret-access-key": "[redacted]", "keep": "z"}]}


def test_known_secrets_are_removed_even_when_they_match_no_shape() -> None:
    assert redact("the password is hunter2-horse", known=["hunter2-horse"]) == "the password is [redacted]"


_PATTERN_HINTS = re.compile(r"AKIA|ASIA|byo_\[|sk-\[|AIza|eyJ|BEGIN .*PRIVATE")


def test_no_other_module_defines_credential_patterns() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "byollm"
    offenders = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src).as_posix()
        if rel == "redact.py" or rel.startswith("sim/"):  # the simulator mints credentials; it scrubs nothing
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            is_pattern = "re.compile" in line or line.lstrip().startswith(('r"', "r'"))
            if is_pattern and _PATTERN_HINTS.search(line):
                offenders.append(f"{rel}:{number}")
    assert offenders == [], "credential patterns belong in byollm/redact.py"
