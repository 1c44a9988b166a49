"""Immutable random UIDs for teams, members and named agents: 22 base62 characters.

Why random and never reused: a UID appears in the ``sub`` of every web-identity token byollm signs
(``scoped_principal:<team-uid>/<actor-type>:<principal-uid>``) and customers pin it in IAM trust policies. A
name can be renamed and a counter can be guessed or recycled after a delete; 22 base62 characters from
``secrets`` carry about 131 bits, so a UID is unguessable and a collision is not a practical concern (the
store still enforces uniqueness). Example: ``HzjUdNkg8Uiq8gp6FMgfxe``.
"""

from __future__ import annotations

import secrets

__all__ = ["UID_ALPHABET", "UID_LENGTH", "is_uid", "new_uid"]

UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UID_LENGTH = 22
_ALPHABET_SET = frozenset(UID_ALPHABET)


def new_uid() -> str:
    """A fresh UID drawn from the OS's cryptographic random source."""
    return "".join(secrets.choice(UID_ALPHABET) for _ in range(UID_LENGTH))


def is_uid(value: object) -> bool:
    """Whether ``value`` has the shape of a UID (it says nothing about whether one exists)."""
    return isinstance(value, str) and len(value) == UID_LENGTH and _ALPHABET_SET.issuperset(value)
