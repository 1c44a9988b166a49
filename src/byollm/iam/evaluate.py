"""Evaluate IAM policy documents locally, and say which statement element or condition decided.

Why byollm has its own evaluator: the doctor must tell an admin *which* condition of a trust policy or
*which* resource of a permissions policy is wrong, from a document the admin pasted (the panel holds no AWS
credentials) or one the CLI read with the admin's credentials. IAM itself only answers allow or deny.
(The simulator has a separate evaluator for its own use; byollm never imports it, and a property test keeps
the two in agreement.)

Semantics, for one policy type at a time (identity policies, or one role's trust policy):

- an explicit ``Deny`` in any matching statement wins; otherwise any matching ``Allow`` allows; otherwise
  the answer is an implicit deny;
- a statement matches when its ``Action``/``NotAction``, ``Resource``/``NotResource`` (when present),
  ``Principal`` (trust policies) and every condition match;
- actions match case-insensitively and resources case-sensitively, both with ``*`` (any run of characters,
  also none) and ``?`` (one character); a principal is compared whole: ``"*"`` is everyone, any other value
  must equal the caller exactly (IAM never expands a partial wildcard such as ``oidc-provider/*``);
- a trust policy IAM would refuse to store (a ``Resource``/``NotResource`` or ``NotPrincipal`` element, a
  statement without ``Principal``) is ``MalformedPolicy`` with IAM's wording;
- condition keys are case-insensitive. ``String*``, ``Arn*``, ``Bool``, ``Numeric*``, ``Date*`` (ISO 8601
  or epoch seconds; UTC when no offset is given), ``IpAddress``/``NotIpAddress`` (address or CIDR, IPv4 or
  IPv6) and ``Null`` are supported, each with the ``ForAnyValue:``/``ForAllValues:`` prefixes and the
  ``IfExists`` suffix. The global keys a caller may pass (see ``global_context``): ``aws:CurrentTime``,
  ``aws:EpochTime``, ``aws:SourceIp``, ``aws:SecureTransport``, ``aws:RequestedRegion``,
  ``aws:PrincipalArn``. A key
  missing from the request makes a condition false, except for the negated operators and ``…IfExists``
  (true), ``ForAllValues:`` (true, vacuously) and ``Null`` (which tests exactly that). Several values for
  one key are alternatives (any may match; for a negated operator none may).

Example::

    evaluation = evaluate_trust(doc, principal=("Federated", provider_arn),
                                context={"issuer.example:sub": ["scoped_principal:T/user:U"], ...})
    evaluation.allowed, evaluation.reasons()  # False, ['statement 1: StringLike issuer.example:sub ...']
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Decision",
    "Evaluation",
    "MalformedPolicy",
    "StatementResult",
    "evaluate_identity",
    "evaluate_trust",
    "global_context",
    "wildcard_match",
]


class MalformedPolicy(ValueError):
    """The document is not a policy byollm can evaluate (IAM would call most of these malformed)."""


class Decision(StrEnum):
    """IAM's three answers, spelled as ``SimulatePrincipalPolicy`` spells them."""

    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: ``*`` is any run of characters (also empty), ``?`` exactly one character."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # iterative glob with backtracking to the last star: linear in practice, no regex compilation
    p = v = 0
    star = -1
    mark = 0
    while v < len(value):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == value[v]) and pattern[p] != "*":
            p += 1
            v += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, v
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            v = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise MalformedPolicy(f"{where} must be a string or a list of strings")


def _condition_values(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise MalformedPolicy(f"{where}: condition values must be strings, numbers or booleans")
    return out


# --- conditions ----------------------------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _moment(text: str) -> float | None:
    """A Date operand: epoch seconds, or ISO 8601 (a date alone, or with a time; UTC when no offset)."""
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _in_network(policy_value: str, request_value: str) -> bool:
    network = _network(policy_value)
    if network is None:
        raise MalformedPolicy(f"condition value {policy_value!r} is not an IP address or CIDR block")
    try:
        return ipaddress.ip_address(request_value) in network
    except ValueError:
        return False


_ORDER = {
    "equals": lambda have, want: have == want,
    "lessthan": lambda have, want: have < want,
    "lessthanequals": lambda have, want: have <= want,
    "greaterthan": lambda have, want: have > want,
    "greaterthanequals": lambda have, want: have >= want,
}


def _operand_problem(base: str, value: str) -> str | None:
    """Why ``value`` cannot be an operand of ``base`` (IAM refuses such a policy), or None."""
    if base.startswith("numeric") and _number(value) is None:
        return f"condition value {value!r} is not a number"
    if base.startswith("date") and _moment(value) is None:
        return f"condition value {value!r} is not a date"
    if base == "ipaddress" and _network(value) is None:
        return f"condition value {value!r} is not an IP address or CIDR block"
    return None


def _compare(base: str, policy_value: str, request_value: str) -> bool:
    """The positive form of operator ``base`` (lower case, no prefix/suffix, not negated)."""
    if base == "stringequals":
        return request_value == policy_value
    if base == "stringequalsignorecase":
        return request_value.lower() == policy_value.lower()
    if base in ("stringlike", "arnlike", "arnequals"):
        return wildcard_match(policy_value, request_value)
    if base == "bool":
        return request_value.lower() == policy_value.lower()
    if base == "ipaddress":
        return _in_network(policy_value, request_value)
    kind, relation = ("date", base[4:]) if base.startswith("date") else ("numeric", base[7:])
    read = _moment if kind == "date" else _number
    want, have = read(policy_value), read(request_value)
    if want is None:
        raise MalformedPolicy(_operand_problem(base, policy_value) or f"bad operand {policy_value!r}")
    if have is None:
        return False
    return bool(_ORDER[relation](have, want))


# operator (lower case, without set prefix or IfExists) -> (positive base operator, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "stringequals": ("stringequals", False),
    "stringnotequals": ("stringequals", True),
    "stringequalsignorecase": ("stringequalsignorecase", False),
    "stringnotequalsignorecase": ("stringequalsignorecase", True),
    "stringlike": ("stringlike", False),
    "stringnotlike": ("stringlike", True),
    "arnequals": ("arnequals", False),
    "arnnotequals": ("arnequals", True),
    "arnlike": ("arnlike", False),
    "arnnotlike": ("arnlike", True),
    "bool": ("bool", False),
    "numericequals": ("numericequals", False),
    "numericnotequals": ("numericequals", True),
    "numericlessthan": ("numericlessthan", False),
    "numericlessthanequals": ("numericlessthanequals", False),
    "numericgreaterthan": ("numericgreaterthan", False),
    "numericgreaterthanequals": ("numericgreaterthanequals", False),
    "dateequals": ("dateequals", False),
    "datenotequals": ("dateequals", True),
    "datelessthan": ("datelessthan", False),
    "datelessthanequals": ("datelessthanequals", False),
    "dategreaterthan": ("dategreaterthan", False),
    "dategreaterthanequals": ("dategreaterthanequals", False),
    "ipaddress": ("ipaddress", False),
    "notipaddress": ("ipaddress", True),
}


@dataclass(frozen=True, slots=True)
class _Condition:
    operator: str  # as written in the policy
    key: str  # as written in the policy
    values: tuple[str, ...]

    def describe(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.operator} {self.key} = {shown!r}"

    def holds(self, context: Mapping[str, Sequence[str]]) -> bool:
        op = self.operator.lower()
        set_op = None
        for prefix in ("foranyvalue:", "forallvalues:"):
            if op.startswith(prefix):
                set_op, op = prefix[:-1], op[len(prefix):]
        if_exists = op.endswith("ifexists")
        if if_exists:
            op = op[: -len("ifexists")]
        request = list(context.get(self.key.lower()) or [])
        if op == "null":
            want_missing = any(v.lower() == "true" for v in self.values)
            return want_missing == (not request)
        if op not in _OPERATORS:
            raise MalformedPolicy(f"unsupported condition operator {self.operator}")
        base, negated = _OPERATORS[op]
        for value in self.values:  # validate typed operands even when the key is missing
            problem = _operand_problem(base, value)
            if problem is not None:
                raise MalformedPolicy(problem)
        if not request:
            if if_exists:
                return True
            if set_op == "forallvalues":
                return True
            if set_op == "foranyvalue":
                return False
            return negated

        def one(request_value: str) -> bool:
            hit = any(_compare(base, v, request_value) for v in self.values)
            return not hit if negated else hit

        if set_op == "forallvalues":
            return all(one(r) for r in request)
        if set_op == "foranyvalue":
            return any(one(r) for r in request)
        return all(one(r) for r in request) if negated else any(one(r) for r in request)


# --- statements ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatementResult:
    """How one statement related to the request: whether it matched and, if not, every element that failed."""

    index: int  # 1-based, in document order
    sid: str | None
    effect: str
    matched: bool
    failures: tuple[str, ...] = ()
    applies: bool = True  # False when its Action does not cover the request (irrelevant to the answer)

    @property
    def label(self) -> str:
        return f"statement {self.index}" + (f" ({self.sid})" if self.sid else "")


@dataclass(frozen=True, slots=True)
class _Statement:
    index: int
    sid: str | None
    allow: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None
    not_resource: bool
    principals: Mapping[str, tuple[str, ...]] | None  # "*" is {"*": ("*",)}
    not_principal: bool
    conditions: tuple[_Condition, ...]

    def action_applies(self, action: str) -> bool:
        hit = any(wildcard_match(a, action, ignore_case=True) for a in self.actions)
        return hit != self.not_action

    def check(self, action: str, resource: str | None, principal: tuple[str, str] | None,
              context: Mapping[str, Sequence[str]]) -> StatementResult:
        effect = "Allow" if self.allow else "Deny"
        if not self.action_applies(action):
            return StatementResult(self.index, self.sid, effect, False,
                                   (f"{'NotAction' if self.not_action else 'Action'} does not cover {action}",),
                                   applies=False)
        failures: list[str] = []
        if self.resources is not None and resource is not None:
            hit = any(wildcard_match(r, resource) for r in self.resources)
            if hit == self.not_resource:
                failures.append(f"{'NotResource' if self.not_resource else 'Resource'} does not cover {resource}")
        if principal is not None:
            failures.extend(self._principal_failures(principal))
        for condition in self.conditions:
            if not condition.holds(context):
                failures.append(_condition_failure(condition, context))
        return StatementResult(self.index, self.sid, effect, not failures, tuple(failures))

    def _principal_failures(self, principal: tuple[str, str]) -> list[str]:
        kind, value = principal
        if self.principals is None:
            return ["the statement names no Principal"]
        if "*" in self.principals:
            hit = True
        else:
            hit = any(p == "*" or _principal_id(kind, p) == value for p in self.principals.get(kind, ()))
        if hit == self.not_principal:
            named = [f"{k}: {v}" for k, vs in self.principals.items() for v in vs]
            what = "NotPrincipal" if self.not_principal else "Principal"
            partial = [v for vs in self.principals.values() for v in vs if v != "*" and ("*" in v or "?" in v)]
            note = " (IAM never matches a partial wildcard in a principal)" if partial else ""
            return [f"{what} is {', '.join(named) or 'empty'}, not {kind}: {value}{note}"]
        return []


def _condition_failure(condition: _Condition, context: Mapping[str, Sequence[str]]) -> str:
    request = context.get(condition.key.lower())
    if not request:
        known = ", ".join(sorted(context)) or "none"
        return (f"condition {condition.describe()} is false: the request has no {condition.key}"
                f" (its keys: {known})")
    shown = request[0] if len(request) == 1 else list(request)
    return f"condition {condition.describe()} is false for {condition.key} = {shown!r}"


def _principal_id(kind: str, value: str) -> str:
    """IAM reads a bare account id as that account's root."""
    if kind == "AWS" and len(value) == 12 and value.isdigit():
        return f"arn:aws:iam::{value}:root"
    return value


def _parse_principal(raw: Any, where: str) -> Mapping[str, tuple[str, ...]]:
    if raw == "*":
        return {"*": ("*",)}
    if isinstance(raw, Mapping):
        return {str(k): tuple(_strings(v, f"{where}.{k}")) for k, v in raw.items()}
    raise MalformedPolicy(f'{where} must be "*" or an object')


def _parse_statement(raw: Any, index: int) -> _Statement:
    where = f"statement {index}"
    if not isinstance(raw, Mapping):
        raise MalformedPolicy(f"{where} must be an object")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"{where}: Effect must be Allow or Deny")
    if ("Action" in raw) == ("NotAction" in raw):
        raise MalformedPolicy(f"{where} needs exactly one of Action or NotAction")
    not_action = "NotAction" in raw
    actions = tuple(_strings(raw["NotAction" if not_action else "Action"], f"{where}.Action"))
    if "Resource" in raw and "NotResource" in raw:
        raise MalformedPolicy(f"{where} has both Resource and NotResource")
    not_resource = "NotResource" in raw
    resources = None
    if "Resource" in raw or not_resource:
        resources = tuple(_strings(raw["NotResource" if not_resource else "Resource"], f"{where}.Resource"))
    not_principal = "NotPrincipal" in raw
    principals = None
    if "Principal" in raw or not_principal:
        principals = _parse_principal(raw["NotPrincipal" if not_principal else "Principal"], f"{where}.Principal")
    block = raw.get("Condition", {})
    if not isinstance(block, Mapping):
        raise MalformedPolicy(f"{where}: Condition must be an object")
    conditions: list[_Condition] = []
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            raise MalformedPolicy(f"{where}: Condition.{operator} must be an object")
        for key, value in entries.items():
            condition = _Condition(str(operator), str(key), tuple(_condition_values(value, where)))
            condition.holds({})  # raises MalformedPolicy for an unknown operator or a non-numeric operand
            conditions.append(condition)
    sid = raw.get("Sid")
    return _Statement(index=index, sid=str(sid) if sid else None, allow=effect == "Allow", actions=actions,
                      not_action=not_action, resources=resources, not_resource=not_resource,
                      principals=principals, not_principal=not_principal, conditions=tuple(conditions))


_TRUST_PROHIBITED = ("Resource", "NotResource", "NotPrincipal")


def _check_trust_statement(raw: Mapping[str, Any]) -> None:
    """IAM refuses to store these in a role's trust policy (``MalformedPolicyDocument``)."""
    for name in _TRUST_PROHIBITED:
        if name in raw:
            raise MalformedPolicy(f"Has prohibited field {name}")
    if "Principal" not in raw:
        raise MalformedPolicy("Missing required field Principal")


def _statements(documents: Iterable[Mapping[str, Any]], *, trust: bool = False) -> list[_Statement]:
    out: list[_Statement] = []
    for document in documents:
        if not isinstance(document, Mapping):
            raise MalformedPolicy("a policy document must be a JSON object")
        raw = document.get("Statement")
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else None
        if items is None:
            raise MalformedPolicy("a policy document needs a Statement")
        for item in items:
            statement = _parse_statement(item, len(out) + 1)
            if trust:
                _check_trust_statement(item)
            out.append(statement)
    return out


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one request, with every statement's result so callers can name what failed."""

    action: str
    resource: str | None
    decision: Decision
    statements: tuple[StatementResult, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED

    def reasons(self) -> list[str]:
        """Why the request was not allowed: the denying statement, or each relevant Allow's failed elements."""
        if self.decision is Decision.EXPLICIT_DENY:
            return [f"{s.label} denies {self.action} explicitly" for s in self.statements
                    if s.matched and s.effect == "Deny"]
        if self.decision is Decision.ALLOWED:
            return []
        relevant = [s for s in self.statements if s.effect == "Allow" and s.applies]
        if not relevant:
            return [f"no statement allows {self.action}"]
        return [f"{s.label}: {failure}" for s in relevant for failure in s.failures]


def _evaluate(statements: Sequence[_Statement], action: str, resource: str | None,
              principal: tuple[str, str] | None, context: Mapping[str, Sequence[str]]) -> Evaluation:
    lowered = {k.lower(): list(v) for k, v in context.items()}
    results = tuple(s.check(action, resource, principal, lowered) for s in statements)
    if any(r.matched and r.effect == "Deny" for r in results):
        decision = Decision.EXPLICIT_DENY
    elif any(r.matched for r in results):
        decision = Decision.ALLOWED
    else:
        decision = Decision.IMPLICIT_DENY
    return Evaluation(action, resource, decision, results)


def evaluate_identity(documents: Iterable[Mapping[str, Any]], action: str, resource: str,
                      context: Mapping[str, Sequence[str]] | None = None) -> Evaluation:
    """Evaluate a principal's identity policies (all together) for ``action`` on ``resource``.

    Raises ``MalformedPolicy`` for a document byollm cannot read.
    """
    return _evaluate(_statements(documents), action, resource, None, context or {})


def evaluate_trust(document: Mapping[str, Any], *, principal: tuple[str, str],
                   context: Mapping[str, Sequence[str]], action: str = "sts:AssumeRoleWithWebIdentity") -> Evaluation:
    """Evaluate a role's trust policy for ``principal`` (``("Federated", provider_arn)``) with ``context``
    (the token's condition keys, e.g. ``issuer.example:sub``). Raises ``MalformedPolicy``."""
    return _evaluate(_statements([document], trust=True), action, None, principal, context)



def global_context(*, now: datetime, requested_region: str | None = None, principal_arn: str | None = None,
                   source_ip: str | None = None, secure_transport: bool = True) -> dict[str, list[str]]:
    """The global condition keys AWS sets on a request, for callers that evaluate a policy as AWS would
    (the doctor): ``aws:CurrentTime`` and ``aws:EpochTime`` from ``now``, ``aws:SecureTransport``, and
    ``aws:RequestedRegion``, ``aws:PrincipalArn`` and ``aws:SourceIp`` when known (an unknown key stays
    absent, as IAM's simulator leaves it)."""
    moment = now.astimezone(UTC)
    context = {
        "aws:CurrentTime": [moment.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:EpochTime": [str(int(moment.timestamp()))],
        "aws:SecureTransport": ["true" if secure_transport else "false"],
    }
    if requested_region is not None:
        context["aws:RequestedRegion"] = [requested_region]
    if principal_arn is not None:
        context["aws:PrincipalArn"] = [principal_arn]
    if source_ip is not None:
        context["aws:SourceIp"] = [source_ip]
    return context
