"""IAM policy evaluation: the subset of the IAM policy language the simulator needs, compiled once.

Evaluation follows IAM's rules for one policy type at a time: an explicit Deny in any matching statement
wins, otherwise any matching Allow allows, otherwise the answer is an implicit deny. A statement matches
when its Action/NotAction, Resource/NotResource, Principal (trust policies only) and every condition match.

Matching: actions are case-insensitive, resources case-sensitive, both with ``*`` and ``?`` wildcards.
Principals are compared whole: ``"*"`` (or ``{"AWS": "*"}``) is everyone, any other value must equal the
caller's principal exactly, because IAM never expands a partial wildcard in a principal ARN.
Condition keys are case-insensitive; values are compared per operator. Supported operators: String*
(Equals, NotEquals, EqualsIgnoreCase, NotEqualsIgnoreCase, Like, NotLike), Arn* (Equals, Like, NotEquals,
NotLike), Numeric*, Date* (ISO 8601 or epoch seconds, UTC when no offset is given), Bool, IpAddress and
NotIpAddress (an address or CIDR block, IPv4 or IPv6), Null, each with the ``ForAnyValue:``/``ForAllValues:``
set prefixes and the ``IfExists`` suffix. A key missing from the request makes a condition false, except
for the negated operators (true), ``…IfExists`` (true) and ``Null`` (which tests exactly that).

``validate_trust_policy`` refuses what IAM refuses in a role's trust policy (a ``Resource``/``NotResource``
or ``NotPrincipal`` element, a statement without ``Principal``), with IAM's wording.

Policies are compiled to ``PolicySet`` objects once (regexes built ahead) so per-request evaluation is a
handful of regex matches; callers cache the compiled sets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "Decision",
    "PolicyError",
    "PolicySet",
    "compile_policies",
    "condition_matches",
    "validate_trust_policy",
]

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"

Context = Mapping[str, Sequence[str]]  # lower-cased key -> values


class PolicyError(ValueError):
    """A policy document is malformed (IAM's MalformedPolicyDocument)."""


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    matched: tuple[dict[str, Any], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED


def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """Compile an IAM wildcard pattern (``*``, ``?``) to an anchored regex."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{what} must be a string or a list of strings")


class _Matcher:
    """Wildcard membership test over a list of patterns; ``*`` alone short-circuits."""

    __slots__ = ("_any", "_exact", "_ignore_case", "_regexes")

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool) -> None:
        pats = list(patterns)
        self._any = "*" in pats
        self._ignore_case = ignore_case
        wild = [p for p in pats if "*" in p or "?" in p]
        self._exact = frozenset(p.lower() if ignore_case else p for p in pats if p not in wild)
        self._regexes = tuple(_glob(p, ignore_case) for p in wild)

    def __call__(self, value: str, *, lowered: str | None = None) -> bool:
        if self._any:
            return True
        if lowered is None:
            lowered = value.lower() if self._ignore_case else value
        if lowered in self._exact:
            return True
        return any(r.match(value) for r in self._regexes)


# ------------------------------------------------------------------------------------ conditions


def _num(v: str) -> float:
    return float(v)


def _date(v: str) -> float:
    if v.isascii() and v.isdigit():
        return float(v)
    moment = datetime.fromisoformat(v.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


Predicate = Callable[[str], bool]


def _equals(p: str) -> Predicate:
    return lambda r: r == p


def _equals_ignore_case(p: str) -> Predicate:
    lowered = p.lower()
    return lambda r: r.lower() == lowered


def _like(p: str) -> Predicate:
    rx = _glob(p, False)
    return lambda r: rx.match(r) is not None


def _ordered(conv: Callable[[str], float], op: Callable[[float, float], bool]) -> Callable[[str], Predicate]:
    def factory(p: str) -> Predicate:
        try:
            bound = conv(p)
        except ValueError:
            raise PolicyError(f"condition value {p!r} is not of the operator's type") from None

        def test(r: str) -> bool:
            try:
                return op(conv(r), bound)
            except ValueError:
                return False

        return test

    return factory


def _ip(p: str) -> Predicate:
    try:
        network = ipaddress.ip_network(p, strict=False)
    except ValueError:
        raise PolicyError(f"condition value {p!r} is not an IP address or CIDR block") from None

    def test(r: str) -> bool:
        try:
            return ipaddress.ip_address(r) in network
        except ValueError:
            return False

    return test


# operator name (lower case, no set prefix, no IfExists) -> (predicate factory over a policy value, negated)
_BASE_OPS: dict[str, tuple[Callable[[str], Predicate], bool]] = {
    "stringequals": (_equals, False),
    "stringnotequals": (_equals, True),
    "stringequalsignorecase": (_equals_ignore_case, False),
    "stringnotequalsignorecase": (_equals_ignore_case, True),
    "stringlike": (_like, False),
    "stringnotlike": (_like, True),
    "arnequals": (_like, False),
    "arnlike": (_like, False),
    "arnnotequals": (_like, True),
    "arnnotlike": (_like, True),
    "numericequals": (_ordered(_num, lambda a, b: a == b), False),
    "numericnotequals": (_ordered(_num, lambda a, b: a == b), True),
    "numericlessthan": (_ordered(_num, lambda a, b: a < b), False),
    "numericlessthanequals": (_ordered(_num, lambda a, b: a <= b), False),
    "numericgreaterthan": (_ordered(_num, lambda a, b: a > b), False),
    "numericgreaterthanequals": (_ordered(_num, lambda a, b: a >= b), False),
    "dateequals": (_ordered(_date, lambda a, b: a == b), False),
    "datenotequals": (_ordered(_date, lambda a, b: a == b), True),
    "datelessthan": (_ordered(_date, lambda a, b: a < b), False),
    "datelessthanequals": (_ordered(_date, lambda a, b: a <= b), False),
    "dategreaterthan": (_ordered(_date, lambda a, b: a > b), False),
    "dategreaterthanequals": (_ordered(_date, lambda a, b: a >= b), False),
    "bool": (_equals_ignore_case, False),
    "ipaddress": (_ip, False),
    "notipaddress": (_ip, True),
}


def _policy_values(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str | int | float):
            out.append(str(v))
        else:
            raise PolicyError("condition values must be strings, numbers or booleans")
    return out


class _Condition:
    """One compiled ``{operator: {key: value}}`` entry."""

    __slots__ = ("_if_exists", "_is_null", "_key", "_negated", "_predicates", "_set_op", "_want_missing")

    def __init__(self, operator: str, key: str, policy_value: Any) -> None:
        op = operator.lower()
        self._set_op: str | None = None
        if op.startswith("foranyvalue:"):
            self._set_op, op = "any", op[len("foranyvalue:") :]
        elif op.startswith("forallvalues:"):
            self._set_op, op = "all", op[len("forallvalues:") :]
        self._if_exists = op.endswith("ifexists")
        if self._if_exists:
            op = op[: -len("ifexists")]
        self._key = key.lower()
        values = _policy_values(policy_value)
        self._is_null = op == "null"
        self._want_missing = any(v.lower() == "true" for v in values)
        self._negated = False
        self._predicates: tuple[Predicate, ...] = ()
        if not self._is_null:
            base = _BASE_OPS.get(op)
            if base is None:
                raise PolicyError(f"unsupported condition operator {operator}")
            factory, self._negated = base
            self._predicates = tuple(factory(v) for v in values)

    @property
    def key(self) -> str:
        return self._key

    def _one(self, req: str) -> bool:
        hit = any(p(req) for p in self._predicates)
        return not hit if self._negated else hit

    def __call__(self, context: Context) -> bool:
        req_values = context.get(self._key)
        present = req_values is not None and len(req_values) > 0
        if self._is_null:
            return self._want_missing != present
        if not present or req_values is None:
            if self._set_op == "all":
                return True
            if self._set_op == "any":
                return False
            return self._if_exists or self._negated
        if self._set_op == "all":
            return all(self._one(r) for r in req_values)
        if self._set_op == "any":
            return any(self._one(r) for r in req_values)
        # Single-valued operator: a negated operator must hold for every value, a positive one for any.
        if self._negated:
            return all(self._one(r) for r in req_values)
        return any(self._one(r) for r in req_values)


def condition_matches(operator: str, key: str, policy_value: Any, context: Context) -> bool:
    """Evaluate one ``{operator: {key: value}}`` entry against a request context (lower-cased keys)."""
    return _Condition(operator, key, policy_value)(context)


# ------------------------------------------------------------------------------------ statements


@dataclass(frozen=True, slots=True)
class _Statement:
    raw: dict[str, Any]
    allow: bool
    actions: _Matcher
    not_actions: bool
    resources: _Matcher | None
    not_resources: bool
    principals: dict[str, frozenset[str]] | None
    conditions: tuple[_Condition, ...]

    def matches(
        self,
        action: str,
        action_lower: str,
        resource: str | None,
        context: Context,
        principal: tuple[str, str] | None,
    ) -> bool:
        if self.actions(action, lowered=action_lower) == self.not_actions:
            return False
        if self.resources is not None and resource is not None and self.resources(resource) == self.not_resources:
            return False
        if principal is not None:
            if self.principals is None:
                return False
            ptype, pvalue = principal
            named = self.principals.get(ptype)
            if named is None or ("*" not in named and pvalue not in named):
                return False
        return all(condition(context) for condition in self.conditions)


def _principal_id(kind: str, value: str) -> str:
    """IAM accepts a bare account id for an AWS principal, meaning that account's root."""
    if kind == "AWS" and len(value) == 12 and value.isdigit():
        return f"arn:aws:iam::{value}:root"
    return value


def _compile_statement(stmt: Any) -> _Statement:
    if not isinstance(stmt, dict):
        raise PolicyError("each Statement must be an object")
    effect = stmt.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError("Effect must be Allow or Deny")
    if ("Action" in stmt) == ("NotAction" in stmt):
        raise PolicyError("a statement needs exactly one of Action or NotAction")
    action_key = "Action" if "Action" in stmt else "NotAction"
    resources = None
    not_resources = False
    if "Resource" in stmt or "NotResource" in stmt:
        rkey = "Resource" if "Resource" in stmt else "NotResource"
        resources = _Matcher(_as_list(stmt[rkey], rkey), ignore_case=False)
        not_resources = rkey == "NotResource"
    principals = None
    if "Principal" in stmt:
        raw_p = stmt["Principal"]
        if raw_p == "*":
            principals = {t: frozenset({"*"}) for t in ("AWS", "Federated", "Service")}
        elif isinstance(raw_p, dict):
            principals = {
                t: frozenset(_principal_id(t, x) for x in _as_list(v, f"Principal.{t}")) for t, v in raw_p.items()
            }
        else:
            raise PolicyError('Principal must be "*" or an object')
    conditions: list[_Condition] = []
    cond = stmt.get("Condition", {})
    if not isinstance(cond, dict):
        raise PolicyError("Condition must be an object")
    for op, block in cond.items():
        if not isinstance(block, dict):
            raise PolicyError(f"Condition.{op} must be an object")
        conditions.extend(_Condition(op, key, value) for key, value in block.items())
    return _Statement(
        raw=stmt,
        allow=effect == "Allow",
        actions=_Matcher(_as_list(stmt[action_key], action_key), ignore_case=True),
        not_actions=action_key == "NotAction",
        resources=resources,
        not_resources=not_resources,
        principals=principals,
        conditions=tuple(conditions),
    )


class PolicySet:
    """A compiled list of policy documents evaluated together (e.g. all of a role's inline policies)."""

    __slots__ = ("_statements", "condition_keys")

    def __init__(self, statements: Sequence[_Statement]) -> None:
        self._statements = tuple(statements)
        # lower-cased condition keys any statement tests (callers skip caching time-dependent answers)
        self.condition_keys = frozenset(c.key for st in self._statements for c in st.conditions)

    def __len__(self) -> int:
        return len(self._statements)

    def evaluate(
        self,
        action: str,
        resource: str | None = None,
        context: Context | None = None,
        *,
        principal: tuple[str, str] | None = None,
    ) -> Decision:
        """Allow/explicitDeny/implicitDeny for ``action`` on ``resource``.

        ``principal`` (type, value) is given for resource-based (trust) policies, e.g.
        ``("Federated", "arn:aws:iam::111122223333:oidc-provider/issuer.example")``.
        """
        ctx = context or {}
        lowered = action.lower()
        allows: list[dict[str, Any]] = []
        for stmt in self._statements:
            if stmt.matches(action, lowered, resource, ctx, principal):
                if not stmt.allow:
                    return Decision(EXPLICIT_DENY, (stmt.raw,))
                allows.append(stmt.raw)
        if allows:
            return Decision(ALLOWED, tuple(allows))
        return Decision(IMPLICIT_DENY)


def compile_policies(documents: Iterable[Mapping[str, Any]]) -> PolicySet:
    """Compile policy documents; raises PolicyError for malformed ones."""
    statements: list[_Statement] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            raise PolicyError("a policy document must be a JSON object")
        raw = doc.get("Statement")
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
        if items is None:
            raise PolicyError("a policy document needs a Statement")
        statements.extend(_compile_statement(s) for s in items)
    return PolicySet(statements)


def validate_trust_policy(doc: Mapping[str, Any]) -> None:
    """Raise PolicyError (IAM's MalformedPolicyDocument wording) for a trust policy IAM would not store.

    IAM's CreateRole/UpdateAssumeRolePolicy answer "Has prohibited field Resource" for a statement with a
    Resource element; a role trust policy cannot use NotPrincipal either, and must name a Principal.
    """
    compile_policies([doc])
    raw = doc.get("Statement")
    items = raw if isinstance(raw, list) else [raw]
    for stmt in items:
        assert isinstance(stmt, dict)  # compile_policies checked it
        for field in ("Resource", "NotResource", "NotPrincipal"):
            if field in stmt:
                raise PolicyError(f"Has prohibited field {field}")
        if "Principal" not in stmt:
            raise PolicyError("Missing required field Principal")
