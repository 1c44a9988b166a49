"""The one place that knows what a credential looks like, and removes it from text and JSON.

Why one module: byollm writes outside input in several places (the request log's retained content, a run's
events and transcripts, the panel's error details, STS messages quoted in errors, the client's chat history).
Each used to carry its own list of shapes and they drifted apart (the panel knew only byollm tokens, the run
scrubber only access key ids). Every scrubber now calls this module, so a new shape is added once and reaches
all of them; ``tests/security/test_redaction.py`` feeds every shape through every caller.

Shapes recognised (``CREDENTIAL_SHAPES``; each a named alternative so tests can enumerate them):

=================  =========================================================================================
name               what it matches
=================  =========================================================================================
aws_key_id         AWS access key ids: ``AKIA``/``ASIA`` (and the other IAM unique-id prefixes) + 16
aws_session_token  AWS session tokens: their fixed base64 prefixes, or any base64 run of 100+ characters
aws_secret_key     40-character secret access keys: base64/url-safe alphabet, mixed case and a digit, standing
                   alone (a 40-hex git SHA has no capital letter and is left alone)
jwt                JSON Web Tokens (``eyJ`` header) and any three-part dotted base64url token
byollm_token       byollm API tokens (``byo_...``) and the local proxy's keys (``byollm-proxy-...``)
provider_key       Anthropic/OpenAI (``sk-...``) and Google (``AIza...``) API keys
private_key        PEM private key blocks
=================  =========================================================================================

A credential split across lines (printed by ``fold``, wrapped by ``base64`` at 76 columns, or cut by a tool
that prints in pieces) is found too: a second pass joins lines that end and begin with credential
characters (letters, digits, ``/+=``) and redacts each match that crossed a line break, the whole span.
What it cannot tell apart: a credential whose lines run straight into other lines of letters and digits
(the joined run is then longer than the shape), or one cut exactly at a ``-``, ``_`` or ``.``. To keep honest output (a
column of numbers or hashes) readable, a shape without a distinctive prefix (the 40-character secret key,
a bare base64 run, a dotted token) counts there only when its lines are wrapped at one width of at least 16
and it mixes capitals, small letters and digits.

A JSON walk (``redact_json``) also replaces the value of any field whose *name* says it carries a credential
(``authorization``, ``x-api-key``, ``aws_secret_access_key``, any ``x-amz-*`` or ``x-byollm-*`` header...),
whatever the value looks like. Standard library only: everything may import it.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

__all__ = [
    "CREDENTIAL_KEYS",
    "CREDENTIAL_SHAPES",
    "REDACTED",
    "contains_credential",
    "is_credential_key",
    "redact",
    "redact_counted",
    "redact_json",
]

REDACTED = "[redacted]"

_B64 = r"A-Za-z0-9/+"
CREDENTIAL_SHAPES: Mapping[str, str] = {
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
           r"|[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",
    "aws_session_token": rf"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[{_B64}=_-]{{20,}}|[{_B64}]{{100,}}={{0,2}}",
    "byollm_token": r"byo_[A-Za-z0-9_-]{8,}|byollm-proxy-[A-Za-z0-9_-]{16,}",
    "provider_key": r"\bsk-[A-Za-z0-9_-]{16,}|\bAIza[A-Za-z0-9_-]{30,}",
    "aws_key_id": r"\b(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|ASCA|ABIA|ACCA)[A-Z0-9]{16}\b",
    # Exactly 40 characters of the secret-key alphabet, not part of a longer run, with a capital, a small
    # letter and a digit somewhere in it.
    "aws_secret_key": r"(?<![A-Za-z0-9/+_-])(?=[A-Za-z0-9/+_-]{0,39}[A-Z])(?=[A-Za-z0-9/+_-]{0,39}[a-z])"
                      r"(?=[A-Za-z0-9/+_-]{0,39}[0-9])[A-Za-z0-9/+_-]{40}(?![A-Za-z0-9/+=_-])",
}
_SHAPES = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in CREDENTIAL_SHAPES.items()))
# a line break between two base64 characters (where a wrapped credential was cut); not at "-", "_" or ".",
# which begin and end many honest lines ("--" separators, "..." ellipses) that would then touch a credential
_BREAK = re.compile(r"(?<=[A-Za-z0-9/+=])\r?\n(?=[A-Za-z0-9/+=])")
_PREFIXED = re.compile(r"(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|ASCA|ABIA|ACCA|eyJ|IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE"
                       r"|byo_|byollm-proxy-|sk-|AIza)")
_MIN_WRAP = 16
# the same shapes for joined lines, without word boundaries (once joined, the neighbouring lines' text
# touches a credential that stood alone on its lines)
_JOINED_SHAPES = re.compile("|".join(f"(?P<{name}>{pattern.replace(chr(92) + 'b', '')})"
                                     for name, pattern in CREDENTIAL_SHAPES.items()))

CREDENTIAL_KEYS = frozenset({
    "headers", "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-goog-api-key",
    "api_key", "api-key", "apikey", "password", "secret", "token", "access_token", "session_token",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "secret_access_key", "access_key_id",
    "private_key",
})
_CREDENTIAL_KEY_PREFIXES = ("x-amz-", "x-byollm-")


def is_credential_key(name: str) -> bool:
    """Whether a field or header called ``name`` carries a credential (case-insensitive)."""
    lowered = name.lower()
    return lowered in CREDENTIAL_KEYS or lowered.startswith(_CREDENTIAL_KEY_PREFIXES)


def _known_first(text: str, known: Iterable[str]) -> tuple[str, int]:
    count = 0
    for secret in sorted((s for s in known if s and len(s) >= 4), key=len, reverse=True):
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, REDACTED)
    return text, count


def _wrapped_plausibly(text: str, start: int, end: int, matched: str) -> bool:
    """Whether the match ``text[start:end]`` (which crosses a line break) looks like one credential cut
    into lines, rather than a column of short or single-case values joined by the second pass."""
    if _PREFIXED.match(matched):
        return True
    if not (any(c.isupper() for c in matched) and any(c.islower() for c in matched)
            and any(c.isdigit() for c in matched)):
        return False
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    lines = [line.rstrip("\r") for line in text[first:last if last >= 0 else len(text)].split("\n")]
    width = len(lines[0])
    return width >= _MIN_WRAP and all(len(line) == width for line in lines[1:-1]) and len(lines[-1]) <= width


def _scrub(text: str, replacement: str) -> tuple[str, int]:
    """Every credential shape replaced, those cut across lines first (see the module docstring), so the
    piece of one on its first line cannot be taken alone and leave the rest."""
    text, wrapped = _scrub_wrapped(text, replacement)
    text, count = _SHAPES.subn(replacement, text)
    return text, count + wrapped


def _scrub_wrapped(text: str, replacement: str) -> tuple[str, int]:
    if "\n" not in text:
        return text, 0
    kept = [m.span() for m in _BREAK.finditer(text)]
    if not kept:
        return text, 0
    # the text between the line breaks, as (start in ``text``, start in the joined text) per piece
    starts: list[int] = []
    joined_starts: list[int] = []
    pieces: list[str] = []
    previous = length = 0
    for cut_start, cut_end in [*kept, (len(text), len(text))]:
        starts.append(previous)
        joined_starts.append(length)
        pieces.append(text[previous:cut_start])
        length += cut_start - previous
        previous = cut_end
    joined = "".join(pieces)

    def at(index: int) -> int:
        piece = bisect.bisect_right(joined_starts, index) - 1
        return starts[piece] + index - joined_starts[piece]

    spans: list[tuple[int, int]] = []
    for match in _JOINED_SHAPES.finditer(joined):
        start, end = at(match.start()), at(match.end() - 1) + 1
        if "\n" in text[start:end] and _wrapped_plausibly(text, start, end, match.group()):
            spans.append((start, end))
    for start, end in reversed(spans):
        text = text[:start] + replacement + text[end:]
    return text, len(spans)


def redact(text: str, *, known: Iterable[str] = (), replacement: str = REDACTED) -> str:
    """``text`` with every credential-shaped run, and every exact ``known`` secret, replaced."""
    return redact_counted(text, known=known, replacement=replacement)[0]


def redact_counted(text: str, *, known: Iterable[str] = (), replacement: str = REDACTED) -> tuple[str, int]:
    """Like ``redact``, also saying how many replacements were made."""
    text, count = _known_first(text, known)
    cleaned, found = _scrub(text, replacement)
    return cleaned, count + found


def contains_credential(text: str, *, known: Iterable[str] = ()) -> bool:
    """Whether ``text`` holds a known secret or anything credential-shaped."""
    return any(secret and secret in text for secret in known) or _scrub(text, REDACTED)[1] > 0


def redact_json(value: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A JSON-safe copy of ``value`` with credential-named fields and credential-shaped strings replaced,
    and whether anything was. Raises TypeError for values JSON cannot hold (bytes, NaN, objects)."""
    redacted = False

    def walk(item: Any) -> Any:
        nonlocal redacted
        if isinstance(item, Mapping):
            out: dict[str, Any] = {}
            for key, inner in item.items():
                name = str(key)
                if is_credential_key(name):
                    out[name] = REDACTED
                    redacted = True
                else:
                    out[name] = walk(inner)
            return out
        if isinstance(item, (list, tuple)):
            return [walk(inner) for inner in item]
        if isinstance(item, str):
            cleaned, count = _scrub(item, REDACTED)
            redacted = redacted or count > 0
            return cleaned
        if isinstance(item, float) and not math.isfinite(item):
            raise TypeError("content holds a non-finite number")
        if item is None or isinstance(item, (bool, int, float)):
            return item
        raise TypeError(f"content holds a {type(item).__name__}")

    return cast(dict[str, Any], walk(value)), redacted
