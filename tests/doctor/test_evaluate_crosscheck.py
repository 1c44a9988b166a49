"""Two independent IAM evaluators must agree: byollm's own (``byollm.iam.evaluate``, used by the doctor) and
the simulator's (``byollm.sim.iam_policy``, which decides what the simulated AWS allows).

Hypothesis generates identity policies (Allow/Deny, Action/NotAction with wildcards and odd case,
Resource/NotResource/none, conditions) and trust policies (Federated principals, partial wildcards included,
which neither may honour; conditions on ``<host>:sub``, ``:aud``, ``:amr`` with every string operator, the
set prefixes, ``IfExists`` and ``Null``; and on the global keys ``aws:CurrentTime``/``aws:EpochTime`` with
the Date operators, ``aws:SourceIp`` with IpAddress/NotIpAddress, ``aws:SecureTransport`` with Bool,
``aws:RequestedRegion`` and ``aws:PrincipalArn`` with the string and ARN operators) and requests, and
compares the decisions.

One known difference is left out of the generator: a set operator combined with ``IfExists``
(``ForAnyValue:StringLikeIfExists``) on a key missing from the request. IAM documents ``IfExists`` as "true
when the key is absent", which byollm follows; the simulator answers false for ``ForAnyValue:…IfExists``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.iam.evaluate import evaluate_identity, evaluate_trust, wildcard_match
from byollm.sim.iam_policy import compile_policies

ALPHABET = "ab*?"
text = st.text(alphabet="abAB", max_size=4)
pattern = st.text(alphabet=ALPHABET, max_size=5)

ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CountTokens", "s3:GetObject"]
ACTION_PATTERNS = ["bedrock:InvokeModel", "bedrock:Invoke*", "bedrock:*", "*", "BEDROCK:invokemodel",
                   "bedrock:InvokeModel?ithResponseStream", "s3:Get*", "bedrock:InvokeModel*Stream", "?3:*"]
RESOURCES = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-7-v1:0",
             "arn:aws:bedrock:::foundation-model/anthropic.claude-opus-4-7-v1:0",
             "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/global.anthropic.claude-opus-4-7-v1:0",
             "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123"]
RESOURCE_PATTERNS = ["arn:aws:bedrock:*::foundation-model/*", "arn:aws:bedrock:*:*:inference-profile/*",
                     "arn:aws:bedrock:*:*:application-inference-profile/*", "*",
                     "arn:aws:bedrock:us-east-1::foundation-model/anthropic.*",
                     "arn:aws:bedrock:?*::foundation-model/*", "arn:aws:bedrock:::foundation-model/*",
                     "ARN:aws:bedrock:*", "arn:aws:bedrock:*:111122223333:*"]
HOST = "issuer.example"
KEYS = [f"{HOST}:sub", f"{HOST}:aud", f"{HOST}:amr", f"{HOST.upper()}:SUB", "other.example:sub"]
BASE_OPERATORS = ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "StringEqualsIgnoreCase",
                  "StringNotEqualsIgnoreCase", "ArnLike", "ArnNotLike"]


@st.composite
def operators(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return "Null"
    base = draw(st.sampled_from(BASE_OPERATORS))
    prefix = draw(st.sampled_from(["", "", "ForAnyValue:", "ForAllValues:"]))
    suffix = "" if prefix else draw(st.sampled_from(["", "", "IfExists"]))  # see the module docstring
    return prefix + base + suffix


# global condition keys: (key, operators, policy values, request values)
DATES = ["2026-01-01T00:00:00Z", "2026-12-03", "2026-12-03T06:30:00+01:00", "1767225600", "1796256000"]
GLOBAL_KEYS: list[tuple[str, list[str], list[Any], list[str]]] = [
    ("aws:CurrentTime", ["DateLessThan", "DateGreaterThan", "DateEquals", "DateNotEquals", "DateLessThanEquals",
                         "DateGreaterThanEquals"], DATES,
     ["2026-12-03T05:30:00Z", "2025-06-01T00:00:00Z", "2031-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "garbage"]),
    ("aws:EpochTime", ["DateLessThan", "DateGreaterThanEquals", "NumericLessThan"], ["1767225600", "1796256000"],
     ["1767225600", "1780000000", "1800000000"]),
    ("aws:SourceIp", ["IpAddress", "NotIpAddress"], ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "0.0.0.0/0"],
     ["10.1.2.3", "192.0.2.1", "198.51.100.7", "2001:db8::1", "not-an-ip"]),
    ("aws:SecureTransport", ["Bool"], ["true", "false", True, False], ["true", "false"]),
    ("aws:RequestedRegion", ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike"],
     ["us-east-1", "unspecified", "us-*", "eu-west-?"], ["us-east-1", "eu-west-1", "unspecified", "us-west-2"]),
    ("aws:PrincipalArn", ["ArnEquals", "ArnLike", "ArnNotLike", "StringEquals"],
     ["arn:aws:iam::111122223333:role/byollm-team", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::*:role/x"],
     ["arn:aws:iam::111122223333:role/byollm-team", "arn:aws:iam::444455556666:role/x"]),
]


@st.composite
def global_condition(draw: st.DrawFn) -> tuple[str, str, Any]:
    key, ops, values, _ = draw(st.sampled_from(GLOBAL_KEYS))
    prefix = draw(st.sampled_from(["", "", "", "ForAnyValue:", "ForAllValues:"]))
    suffix = "" if prefix else draw(st.sampled_from(["", "", "IfExists"]))
    value = draw(st.one_of(st.sampled_from(values), st.lists(st.sampled_from(values), min_size=1, max_size=2)))
    return prefix + draw(st.sampled_from(ops)) + suffix, key, value


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 2)) == 0:
            operator, key, value = draw(global_condition())
            block.setdefault(operator, {})[key] = value
            continue
        operator = draw(operators())
        key = draw(st.sampled_from(KEYS))
        if operator == "Null":
            value = draw(st.sampled_from(["true", "false", True, False]))
        else:
            value = draw(st.one_of(pattern, st.lists(pattern, min_size=1, max_size=3)))
        block.setdefault(operator, {})[key] = value
    return block


@st.composite
def identity_statements(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Allow", "Deny"]))}
    actions = draw(st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=3))
    statement["NotAction" if draw(st.booleans()) and draw(st.booleans()) else "Action"] = (
        actions[0] if len(actions) == 1 else actions)
    kind = draw(st.sampled_from(["Resource", "Resource", "NotResource", None]))
    if kind is not None:
        resources = draw(st.lists(st.one_of(st.sampled_from(RESOURCE_PATTERNS), pattern), min_size=1, max_size=3))
        statement[kind] = resources
    block = draw(conditions())
    if block:
        statement["Condition"] = block
    return statement


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    for key in (f"{HOST}:sub", f"{HOST}:aud", f"{HOST}:amr"):
        if draw(st.booleans()):
            context[key] = draw(st.lists(text, min_size=1, max_size=1 if not key.endswith("amr") else 3))
    for key, _, _, request_values in GLOBAL_KEYS:
        if draw(st.integers(0, 3)):
            context[key] = [draw(st.sampled_from(request_values))]
    return context


def _sim_context(context: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k.lower(): v for k, v in context.items()}


@settings(max_examples=600, deadline=None)
@given(statements=st.lists(identity_statements(), min_size=1, max_size=4), action=st.sampled_from(ACTIONS),
       resource=st.one_of(st.sampled_from(RESOURCES), text), context=contexts())
def test_identity_policies_agree(statements: list[dict[str, Any]], action: str, resource: str,
                                 context: dict[str, list[str]]) -> None:
    document = {"Version": "2012-10-17", "Statement": statements}
    ours = evaluate_identity([document], action, resource, context)
    theirs = compile_policies([document]).evaluate(action, resource, _sim_context(context))
    assert ours.decision.value == theirs.decision, (document, action, resource, context, ours.reasons())


PROVIDER = f"arn:aws:iam::111122223333:oidc-provider/{HOST}"
PRINCIPAL_PATTERNS = [PROVIDER, "arn:aws:iam::111122223333:oidc-provider/*",
                      "arn:aws:iam::*:oidc-provider/issuer.?xample",
                      "arn:aws:iam::111122223333:oidc-provider/app.warp.dev", "*"]


@st.composite
def trust_statements(draw: st.DrawFn) -> dict[str, Any]:
    principal: Any = draw(st.sampled_from(["*", "object", "object"]))
    if principal == "object":
        principal = {"Federated": draw(st.lists(st.sampled_from(PRINCIPAL_PATTERNS), min_size=1, max_size=2))}
    statement: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"])), "Principal": principal,
        "Action": draw(st.sampled_from(["sts:AssumeRoleWithWebIdentity", "sts:AssumeRole*", "sts:AssumeRole"])),
    }
    block = draw(conditions())
    if block:
        statement["Condition"] = block
    return statement


@settings(max_examples=600, deadline=None)
@given(statements=st.lists(trust_statements(), min_size=1, max_size=3), context=contexts(),
       provider=st.sampled_from([PROVIDER, "arn:aws:iam::111122223333:oidc-provider/other.example"]))
def test_trust_policies_agree(statements: list[dict[str, Any]], context: dict[str, list[str]], provider: str) -> None:
    document = {"Version": "2012-10-17", "Statement": statements}
    ours = evaluate_trust(document, principal=("Federated", provider), context=context)
    theirs = compile_policies([document]).evaluate("sts:AssumeRoleWithWebIdentity", None, _sim_context(context),
                                                   principal=("Federated", provider))
    assert ours.decision.value == theirs.decision, (document, provider, context, ours.reasons())


@given(pattern=pattern, value=text)
def test_wildcards_agree_with_a_regex_reading(pattern: str, value: str) -> None:
    import re

    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    assert wildcard_match(pattern, value) == (re.fullmatch(regex, value, re.S) is not None)


def test_the_named_condition_and_the_decision_on_a_known_case() -> None:
    document = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {f"{HOST}:sub": "scoped_principal:OTHER/*"},
                      "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com"}}}]}
    evaluation = evaluate_trust(document, principal=("Federated", PROVIDER),
                                context={f"{HOST}:sub": ["scoped_principal:MINE/user:u1"],
                                         f"{HOST}:aud": ["sts.amazonaws.com"]})
    assert not evaluation.allowed
    assert evaluation.reasons() == [
        f"statement 1: condition StringLike {HOST}:sub = 'scoped_principal:OTHER/*' is false for {HOST}:sub ="
        " 'scoped_principal:MINE/user:u1'"]
