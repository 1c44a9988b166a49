"""Authorising one signed call as IAM does for a single account: the caller's identity policies AND, for
temporary credentials issued with a session policy (``Policy`` and/or ``PolicyArns``), that session policy.
A session policy only ever narrows what the identity policies allow (the effective permissions are the
intersection), and an explicit Deny in either wins.

The request context carries the global condition keys IAM sets on every request: ``aws:CurrentTime``
(ISO 8601, UTC), ``aws:EpochTime``, ``aws:SourceIp`` (the TCP peer), ``aws:SecureTransport`` (TLS or not),
``aws:RequestedRegion``, ``aws:PrincipalArn`` (the role ARN for an assumed-role session),
``aws:PrincipalAccount`` and ``aws:PrincipalType``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from byollm.sim.iam_policy import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, PolicyError, PolicySet, compile_policies
from byollm.sim.sigv4 import Verified
from byollm.sim.state import SimState

__all__ = ["TIME_KEYS", "authorise", "policy_sets", "principal_arn", "request_context"]

# keys whose value changes with every request: answers that depend on them must not be cached
TIME_KEYS = frozenset({"aws:currenttime", "aws:epochtime"})


def principal_arn(verified: Verified) -> str:
    """``aws:PrincipalArn``: for an assumed-role session, the role's ARN (not the session's)."""
    p = verified.principal
    return f"arn:aws:iam::{p.account_id}:role/{p.name}" if p.kind == "assumed-role" else p.arn


def request_context(verified: Verified, now: float, *, requested_region: str) -> dict[str, list[str]]:
    """The global condition keys of one request (lower-cased names, as ``iam_policy`` expects)."""
    p = verified.principal
    context = {
        "aws:currenttime": [datetime.fromtimestamp(int(now), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now))],
        "aws:securetransport": ["true" if verified.secure_transport else "false"],
        "aws:requestedregion": [requested_region],
        "aws:principalarn": [principal_arn(verified)],
        "aws:principalaccount": [p.account_id],
        "aws:principaltype": ["AssumedRole" if p.kind == "assumed-role" else "User"],
    }
    if verified.source_ip:
        context["aws:sourceip"] = [verified.source_ip]
    return context


def policy_sets(state: SimState, verified: Verified) -> tuple[PolicySet, ...]:
    """The identity policies, then the session policy when the credentials carry one."""
    sets = [state.identity_policies(verified.principal)]
    session = verified.identity.session_policy
    if session is not None:
        try:
            sets.append(compile_policies([session]))
        except PolicyError:  # validated when issued; an unreadable one grants nothing
            sets.append(compile_policies([]))
    return tuple(sets)


def authorise(
    sets: Sequence[PolicySet], action: str, resource: str, context: Mapping[str, Sequence[str]]
) -> tuple[str, str]:
    """(decision, the tail of IAM's AccessDenied message). ALLOWED only when every policy set allows (the
    identity policies first, then the session policy); EXPLICIT_DENY when any denies explicitly."""
    decisions = [s.evaluate(action, resource, context).decision for s in sets]
    if EXPLICIT_DENY in decisions:
        where = "a session policy" if decisions.index(EXPLICIT_DENY) > 0 else "an identity-based policy"
        return EXPLICIT_DENY, f"with an explicit deny in {where}"
    if decisions[0] != ALLOWED:
        return IMPLICIT_DENY, f"because no identity-based policy allows the {action} action"
    if not all(d == ALLOWED for d in decisions):
        return IMPLICIT_DENY, f"because no session policy allows the {action} action"
    return ALLOWED, ""
