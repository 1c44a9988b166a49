"""Properties of the parsers that read what outsiders send: Bedrock's event-stream frames, SSE, web-identity
tokens and IAM policy documents.

Why properties: each of these parsers sees bytes byollm does not control (an upstream, a customer's pasted
policy, a token an attacker crafted). The contract is the same everywhere: good input round-trips, and bad
input ends in the parser's own classified error, never in an unclassified exception that would surface as a
500 or kill a stream without a taxonomy class.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import string
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from byollm.iam.evaluate import MalformedPolicy, evaluate_identity, evaluate_trust
from byollm.policy.types import Actor, ActorKind
from byollm.policy.validate import (
    InvalidValue,
    parse_inference_profile,
    validate_account_id,
    validate_endpoint_url,
    validate_inference_profile,
    validate_name,
    validate_region,
    validate_role_arn,
)
from byollm.providers.bedrock import _event_from_frame, _HttpFailure
from byollm.providers.sse import SseMessage, encode_sse, iter_sse
from byollm.services import Services, build_services
from byollm.settings import Settings
from byollm.sim import SimServer
from byollm.sim.eventstream import chunk_frame, encode_headers, encode_message, event_frame, exception_frame
from byollm.sim.iam_policy import PolicyError, compile_policies
from byollm.sim.webidentity import WebIdentityError, WebIdentityValidator
from support.stack import KEK

FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

T = TypeVar("T")

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the SSE parser over in-memory chunks) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the coroutine suspended")


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (any positions, any order, repeats allowed)."""
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# --- AWS event stream (Bedrock InvokeModelWithResponseStream) ------------------------------------------------

HEADER_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
frames = st.one_of(
    st.builds(lambda e: ("chunk", chunk_frame(e)),
              st.fixed_dictionaries({"type": st.sampled_from(["content_block_delta", "message_stop"]),
                                     "text": st.text(max_size=30)})),
    st.builds(lambda t, p: ("event", event_frame(t, p)), HEADER_TEXT,
              st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)),
    st.builds(lambda h, p: ("raw", encode_message(encode_headers(h), p)),
              st.lists(st.tuples(HEADER_TEXT, HEADER_TEXT), max_size=4, unique_by=lambda kv: kv[0]),
              st.binary(max_size=64)),
)


def _decode_all(chunks: list[bytes]) -> list[EventStreamMessage]:
    decoder = EventStreamBuffer()
    out: list[EventStreamMessage] = []
    for chunk in chunks:
        decoder.add_data(chunk)
        out.extend(decoder)
    return out


@FAST
@given(items=st.lists(frames, min_size=1, max_size=5), points=st.lists(st.integers(0, 10_000), max_size=8))
def test_event_stream_frames_round_trip_across_any_chunking(items: list[tuple[str, bytes]], points: list[int]) -> None:
    stream = b"".join(frame for _, frame in items)
    decoded = _decode_all(_cuts(stream, points))
    assert [encode_message(encode_headers(f.headers.items()), f.payload) for f in decoded] == [f for _, f in items]
    for (kind, _), frame in zip(items, decoded, strict=True):
        if kind == "chunk":
            event = _event_from_frame(frame)
            assert event.raw is not None and orjson.loads(event.raw) == event.data


@FAST
@given(exception=st.sampled_from(["throttlingException", "modelStreamErrorException", "internalServerException"]),
       message=st.text(max_size=40))
def test_event_stream_exception_frames_raise_the_upstream_failure(exception: str, message: str) -> None:
    (frame,) = _decode_all([exception_frame(exception, message)])
    with pytest.raises(_HttpFailure) as raised:
        _event_from_frame(frame)
    assert raised.value.error_type.lower() == exception.lower() and raised.value.message == message


# what bedrock._upstream_errors turns into a taxonomy error; anything else would escape unclassified
CLASSIFIED = (ParserError, ValueError, KeyError, TypeError, _HttpFailure)


def _read_everything(data: bytes, points: list[int]) -> None:
    decoder = EventStreamBuffer()
    for chunk in _cuts(data, points):
        decoder.add_data(chunk)
        for frame in decoder:
            _event_from_frame(frame)


@FAST
@given(items=st.lists(frames, min_size=1, max_size=3), data=st.data())
def test_damaged_event_streams_fail_classified(items: list[tuple[str, bytes]], data: st.DataObject) -> None:
    stream = bytearray(b"".join(frame for _, frame in items))
    damage = data.draw(st.sampled_from(["flip", "truncate", "insert", "length"]))
    at = data.draw(st.integers(0, len(stream) - 1))
    if damage == "flip":
        stream[at] ^= data.draw(st.integers(1, 255))
    elif damage == "truncate":
        del stream[at:]
    elif damage == "insert":
        stream[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    else:  # a length field rewritten with its prelude CRC recomputed, so only the frame CRC can catch it
        import struct
        import zlib
        total, headers_length = struct.unpack_from(">II", stream, 0)
        total = data.draw(st.integers(16, total + 64))
        headers_length = data.draw(st.integers(0, total))
        prelude = struct.pack(">II", total, headers_length)
        stream[0:12] = prelude + struct.pack(">I", zlib.crc32(prelude))
    started = time.monotonic()
    with contextlib.suppress(*CLASSIFIED):
        _read_everything(bytes(stream), data.draw(st.lists(st.integers(0, 10_000), max_size=4)))
    assert time.monotonic() - started < 1.0  # bounded input, bounded work: no spinning on a bad length


@FAST
@given(garbage=st.binary(max_size=200), points=st.lists(st.integers(0, 300), max_size=4))
def test_garbage_event_streams_fail_classified(garbage: bytes, points: list[int]) -> None:
    with contextlib.suppress(*CLASSIFIED):
        _read_everything(garbage, points)


# --- server-sent events --------------------------------------------------------------------------------------

LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])
sse_events = st.lists(st.tuples(st.none() | st.text(string.ascii_letters + "_", min_size=1, max_size=12),
                                st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))),
                      max_size=6)


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _parse(parts: list[bytes]) -> list[SseMessage]:
    return [message async for message in iter_sse(_chunks(parts))]


def _reference(stream: bytes) -> list[SseMessage]:
    """The HTML specification's algorithm, literally, over the whole stream at once."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    out: list[SseMessage] = []
    event: str | None = None
    data: list[bytes] = []
    lines = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    for line in lines[:-1]:  # the last piece has no line end: an unterminated line is not processed
        if not line:
            if data:
                out.append(SseMessage(event, b"\n".join(data)))
            event, data = None, []
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or None
    return out


@FAST
@given(events=sse_events, end=LINE_ENDS, comments=st.booleans(), bom=st.booleans(),
       points=st.lists(st.integers(0, 10_000), max_size=10))
def test_sse_gives_the_same_events_for_any_chunking(events: list[tuple[str | None, bytes]], end: bytes,
                                                    comments: bool, bom: bool, points: list[int]) -> None:
    stream = b"".join((b": keep-alive\n\n" if comments else b"") + encode_sse(name, data) for name, data in events)
    stream = (b"\xef\xbb\xbf" if bom else b"") + stream.replace(b"\n", end)
    expected = [SseMessage(name, data) for name, data in events]
    assert _drive(_parse([stream])) == expected
    assert _drive(_parse(_cuts(stream, points))) == expected


@FAST
@given(stream=st.binary(max_size=300).map(lambda b: b.replace(b"\xef\xbb\xbf", b"")) |
       st.lists(st.sampled_from([b"data", b"data:", b": x", b"event: e", b"id: 1", b"\r", b"\n", b"\r\n", b" ",
                                 b"x", b"\xff", b"retry"]), max_size=30).map(b"".join),
       points=st.lists(st.integers(0, 400), max_size=8))
def test_sse_garbage_never_raises_and_matches_the_specification(stream: bytes, points: list[int]) -> None:
    assert _drive(_parse(_cuts(stream, points))) == _reference(stream)


# --- web-identity tokens: byollm's claims, the simulator's verifier -----------------------------------------

UIDS = st.text(string.ascii_letters + string.digits, min_size=1, max_size=40)


@pytest.fixture(scope="module")
def minting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Services]]:
    """byollm's real token minter (its signing keys sealed in a SQLite store), on one loop for the module."""
    settings = Settings.for_data_dir(tmp_path_factory.mktemp("minting"), kek=KEK, public_url="https://issuer.fuzz.test")
    loop = asyncio.new_event_loop()
    services = loop.run_until_complete(build_services(settings, background=False))
    try:
        yield loop, services
    finally:
        loop.run_until_complete(services.close())
        loop.close()


@settings(FAST, max_examples=30)
@given(team=UIDS, principal=UIDS, kind=st.sampled_from([ActorKind.USER_RUN, ActorKind.AGENT_RUN]),
       agent=st.none() | UIDS, run=st.none() | UIDS)
def test_minted_claims_round_trip_and_sub_keeps_its_format(minting: tuple[asyncio.AbstractEventLoop, Services],
                                                          team: str, principal: str, kind: ActorKind,
                                                          agent: str | None, run: str | None) -> None:
    loop, services = minting
    assert services.oidc is not None
    minted = loop.run_until_complete(services.oidc.minter.mint(team_uid=team, actor=Actor(kind, principal, agent),
                                                               run_uid=run))
    jwks = KeySet.import_key_set(loop.run_until_complete(services.oidc.issuer.jwks()))  # type: ignore[arg-type]
    claims = jwt.decode(minted.value, jwks, algorithms=["RS256"]).claims
    actor_type = "user" if kind is ActorKind.USER_RUN else "service_account"
    assert claims["sub"] == minted.subject == f"scoped_principal:{team}/{actor_type}:{principal}"
    prefix, _, rest = claims["sub"].partition(":")
    parsed_team, _, who = rest.partition("/")
    assert (prefix, parsed_team, who) == ("scoped_principal", team, f"{actor_type}:{principal}")
    assert (claims["byollm_team"], claims["byollm_principal"], claims["byollm_actor_type"]) == (team, principal,
                                                                                                actor_type)
    assert claims.get("byollm_agent") == agent and claims.get("byollm_run") == run
    assert claims["iss"] == "https://issuer.fuzz.test" and claims["aud"] == "sts.amazonaws.com"
    assert claims["iat"] == claims["nbf"] == minted.issued_at < claims["exp"] == minted.expires_at
    assert all(isinstance(claims[name], int) for name in ("iat", "nbf", "exp"))


ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def verifier() -> Iterator[tuple[WebIdentityValidator, Any, RSAKey, str]]:
    key = RSAKey.generate_key(2048, parameters={"kid": "fuzz-1", "use": "sig", "alg": "RS256"})
    with SimServer() as sim, httpx.Client(base_url=f"{sim.url}/_sim", timeout=10) as admin:
        issuer = f"{sim.url}/_sim/issuers/fuzz"
        admin.put("/issuers/fuzz", json={"keys": [key.as_dict(private=False)]}).raise_for_status()
        admin.post(f"/accounts/{ACCOUNT}/web-identity-trust",
                   json={"issuer": issuer, "role": "byollm-team", "subject": "scoped_principal:t/*"}).raise_for_status()
        account = sim.state.account(ACCOUNT)
        assert account is not None
        yield WebIdentityValidator(sim.state), account, key, issuer


def _token(key: RSAKey, issuer: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "aud": "sts.amazonaws.com", "sub": "scoped_principal:t/user:someone", "iat": now,
            "exp": now + 600, **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, body, key, algorithms=["RS256"])


def _verify(verifier: tuple[WebIdentityValidator, Any, RSAKey, str], token: str) -> dict[str, Any]:
    validator, account, _, _ = verifier
    return dict(asyncio.run(validator.validate(token, account)).claims)


B64URL = string.ascii_letters + string.digits + "-_"
_GOOD: dict[str, str] = {}


def _good_token(verifier: tuple[WebIdentityValidator, Any, RSAKey, str]) -> str:
    """One signed token per module (signing per example would be most of the test's time), checked once."""
    if "token" not in _GOOD:
        _, _, key, issuer = verifier
        token = _token(key, issuer)
        assert _verify(verifier, token)["sub"] == "scoped_principal:t/user:someone"  # the unmutated one passes
        _GOOD["token"] = token
    return _GOOD["token"]


@settings(FAST, max_examples=40)
@given(data=st.data())
def test_the_verifier_never_accepts_a_mutated_token(verifier: tuple[WebIdentityValidator, Any, RSAKey, str],
                                                    data: st.DataObject) -> None:
    token = _good_token(verifier)
    parts = token.split(".")
    which = data.draw(st.integers(0, 2))
    segment = parts[which]
    mutation = data.draw(st.sampled_from(["replace", "delete", "insert", "swap"]))
    at = data.draw(st.integers(0, len(segment) - 1))
    if mutation == "replace":
        replacement = data.draw(st.sampled_from(B64URL).filter(lambda c: c != segment[at]))
        segment = segment[:at] + replacement + segment[at + 1:]
    elif mutation == "delete":
        segment = segment[:at] + segment[at + 1:]
    elif mutation == "insert":
        segment = segment[:at] + data.draw(st.sampled_from(B64URL + ".=")) + segment[at:]
    else:
        other = data.draw(st.integers(0, 2).filter(lambda i: i != which))
        segment = parts[other]
    mutated = ".".join([*parts[:which], segment, *parts[which + 1:]])
    assume(mutated != token)
    try:
        accepted = _verify(verifier, mutated)
    except WebIdentityError:
        return
    # base64url's last character carries spare bits: a change there can decode to the very same bytes, which
    # is the same token, not a forgery. Anything else accepted is a verifier bug.
    original = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts]
    seen = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in mutated.split(".")]
    assert seen == original, f"accepted a mutated token with claims {accepted}"


@settings(FAST, max_examples=40)
@given(token=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")) |
       st.lists(st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
                min_size=3, max_size=3).map(".".join) |
       st.lists(JSON.map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")),
                min_size=3, max_size=3).map(".".join))
def test_the_verifier_refuses_arbitrary_input_with_its_own_error(
        verifier: tuple[WebIdentityValidator, Any, RSAKey, str], token: str) -> None:
    with pytest.raises(WebIdentityError):
        _verify(verifier, token)


def test_the_verifier_refuses_deeply_nested_json(verifier: tuple[WebIdentityValidator, Any, RSAKey, str]) -> None:
    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")
    with pytest.raises(WebIdentityError):
        _verify(verifier, f"{_good_token(verifier).split('.')[0]}.{nested}.x")


# --- IAM policy documents: byollm's evaluator, the simulator's compiler, byollm's identifier validators -------

POLICY_KEYS = ["Version", "Statement", "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
               "Principal", "Condition", "StringEquals", "StringLike", "NumericLessThan", "Bool", "Federated"]
policy_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(["Allow", "Deny", "*", "bedrock:*", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(POLICY_KEYS) | st.text(max_size=6),
                                                                inner, max_size=4),
    max_leaves=25,
)


@settings(FAST, max_examples=150)
@given(document=policy_like | JSON)
def test_policy_documents_never_crash_either_evaluator(document: Any) -> None:
    with contextlib.suppress(MalformedPolicy):
        evaluate_identity([document], "bedrock:InvokeModel", "arn:aws:bedrock:us-east-1::foundation-model/x",
                          {"aws:username": ["u"]})
        evaluate_trust(document, principal=("Federated", "arn:aws:iam::1:oidc-provider/x"),
                       context={"x:sub": ["s"]})
    with contextlib.suppress(PolicyError):
        compile_policies([document]).evaluate("bedrock:InvokeModel", "arn:aws:bedrock:us-east-1::foundation-model/x",
                                              {"aws:username": ["u"]}, principal=("Federated", "x"))


VALIDATORS = [validate_role_arn, validate_inference_profile, parse_inference_profile, validate_region,
              validate_account_id, validate_name, validate_endpoint_url]


@settings(FAST, max_examples=150)
@given(validator=st.sampled_from(VALIDATORS), field=st.text(string.ascii_lowercase + "_.", min_size=1, max_size=20),
       value=JSON | st.text(max_size=80) | st.sampled_from([
           "arn:aws:iam::111122223333:role/x", "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.x",
           "us-east-1", "https://bedrock.example:99999", "http://u:p@h", "111122223333", "ok-name"]))
def test_identifier_validators_refuse_with_the_field_named(validator: Any, field: str, value: Any) -> None:
    try:
        accepted = validator(value, field=field)
    except InvalidValue as refused:
        problem = refused
    else:
        problem = None
    if problem is not None:
        assert problem.field == field and str(problem).startswith(f"{field}: ")
        return
    again = validator(accepted if isinstance(accepted, str) else value, field=field)
    assert again == accepted  # what was accepted is accepted again unchanged (idempotent normal form)
