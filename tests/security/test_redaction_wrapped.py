"""Credentials cut across lines (``fold``, ``base64``'s 76 columns, a tool printing in pieces) are redacted
whole by ``byollm.redact``, every scrubber included; honest columns of numbers, hashes and words are left."""

from __future__ import annotations

import base64
import itertools

import pytest

from byollm.redact import REDACTED, contains_credential, redact, redact_json

_TOKEN = base64.b64encode(bytes(range(7, 250)) * 2).decode()[:300]

# (shape, the credential, where it is cut)
SPLIT = [
    ("aws_key_id", "AKIAIOSFODNN7EXAMPLE", [16]),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", [20]),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", [21]),
    ("aws_session_token", _TOKEN, [76, 152, 228]),
    ("aws_session_token", "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ", [30]),
    ("jwt", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtLWEifQ.c2lnbmF0dXJlLXZhbHVlLWhlcmU", [30, 60]),
    ("byollm_token", "byo_cacjmOOi21V4r6Dh-hYvR4vwnRLhFB1Hn3UH0Cr60hA", [12]),
    ("byollm_token", "byollm-proxy-0123456789abcdefABCDEF", [20]),
    ("provider_key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", [17]),
    ("provider_key", "AIzaSyA1234567890abcdefghijklmnopqrstu", [25]),
]


def _cut(secret: str, at: list[int], newline: str = "\n") -> str:
    bounds = [0, *at, len(secret)]
    return newline.join(secret[a:b] for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize(("shape", "secret", "at"), SPLIT, ids=[f"{s}-{a}" for s, _, a in SPLIT])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_credential_cut_across_lines_is_redacted_whole(shape: str, secret: str, at: list[int],
                                                         newline: str) -> None:
    text = f"output:\n{_cut(secret, at, newline)}\n[done]\n"
    cleaned = redact(text)
    bounds = [0, *at, len(secret)]
    for piece in (secret[a:b] for a, b in itertools.pairwise(bounds)):
        assert piece not in cleaned, (shape, cleaned)
    assert cleaned.startswith("output:\n") and cleaned.endswith("[done]\n") and REDACTED in cleaned
    assert contains_credential(text)
    scrubbed, found = redact_json({"output": text})
    assert found and REDACTED in scrubbed["output"] and secret[at[-1]:] not in scrubbed["output"]


@pytest.mark.parametrize("text", [
    "\n".join(str(n) for n in range(500)),                                     # seq
    "\n".join(format(n * 7919, "064x") for n in range(1, 20)),                 # a column of hashes
    "README\nLICENSE\nMakefile\nsrc\ntests\nsetup2\npyproject\n",                # ls
    "total 8\ndrwxr-xr-x 2 nobody nogroup 4096 .\n-rw-r--r-- 1 nobody nogroup 5 out.txt\n",
])
def test_honest_columns_are_left_alone(text: str) -> None:
    assert redact(text) == text
