"""Validators for identifiers admins type in, and UIDs."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byollm.catalog import load_catalog
from byollm.errors import ErrorClass
from byollm.policy.ids import UID_LENGTH, is_uid, new_uid
from byollm.policy.validate import (
    InvalidValue,
    ProfileKind,
    override_problem,
    parse_inference_profile,
    parse_role_arn,
    validate_account_id,
    validate_endpoint_url,
    validate_inference_profile,
    validate_name,
    validate_region,
    validate_role_arn,
)

CATALOG = load_catalog()

# --- UIDs -----------------------------------------------------------------------------------------------


def test_new_uid_shape_and_uniqueness() -> None:
    uids = {new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    for uid in uids:
        assert len(uid) == UID_LENGTH == 22
        assert set(uid) <= set(string.ascii_letters + string.digits)
        assert is_uid(uid)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "HzjUdNkg8Uiq8gp6FMgfx",
        "HzjUdNkg8Uiq8gp6FMgfxe1",
        "HzjUdNkg8Uiq8gp6FMgfx-",
        None,
        5,
        "HzjUdNkg8Uiq8gp6FMgfxé",
    ],
)
def test_is_uid_rejects(value: object) -> None:
    assert not is_uid(value)


def test_is_uid_accepts_the_documented_example() -> None:
    assert is_uid("HzjUdNkg8Uiq8gp6FMgfxe")


# --- role ARNs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "partition", "path", "name"),
    [
        ("arn:aws:iam::123456789012:role/byollm", "aws", "/", "byollm"),
        ("arn:aws:iam::123456789012:role/path/to/Byollm-Runs", "aws", "/path/to/", "Byollm-Runs"),
        ("arn:aws-us-gov:iam::000000000001:role/gov+role=x,y.z@w_1", "aws-us-gov", "/", "gov+role=x,y.z@w_1"),
        ("arn:aws-cn:iam::123456789012:role/service-role/cn", "aws-cn", "/service-role/", "cn"),
        ("  arn:aws:iam::123456789012:role/trimmed  ", "aws", "/", "trimmed"),
    ],
)
def test_role_arn_accepts(arn: str, partition: str, path: str, name: str) -> None:
    parsed = parse_role_arn(arn)
    assert parsed.partition == partition
    assert parsed.account_id == arn.strip().split(":")[4]
    assert parsed.path == path
    assert parsed.name == name
    assert validate_role_arn(arn) == arn.strip()


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("arn:aws:iam::12345678901:role/x", "expected an IAM role ARN"),  # 11 digits
        ("arn:aws:iam::1234567890123:role/x", "expected an IAM role ARN"),
        ("arn:aws:iam::123456789012:user/x", "expected an IAM role ARN"),
        ("arn:aws:iam::123456789012:role/", "expected an IAM role ARN"),
        ("arn:aws:iam::123456789012:role/" + "n" * 65, "expected an IAM role ARN"),
        ("arn:aws:iam:us-east-1:123456789012:role/x", "expected an IAM role ARN"),
        ("arn:aws:sts::123456789012:assumed-role/x/y", "expected an IAM role ARN"),
        ("arn:aws-iso:iam::123456789012:role/x", "unknown partition"),
        ("arn:aws:iam::123456789012:role/has space", "without spaces"),
        ("arn:aws:iam::123456789012:role//double", "expected an IAM role ARN"),
        ("role/x", "expected an IAM role ARN"),
        ("", "expected an IAM role ARN"),
    ],
)
def test_role_arn_rejects(arn: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message) as info:
        validate_role_arn(arn)
    assert info.value.field == "role_arn"
    error = info.value.to_error()
    assert error.error_class is ErrorClass.INVALID_REQUEST
    assert error.context["field"] == "role_arn"


def test_role_arn_rejects_non_string() -> None:
    with pytest.raises(InvalidValue):
        validate_role_arn(None)


# --- inference profiles ---------------------------------------------------------------------------------

OPUS = "anthropic.claude-opus-4-7-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.parametrize(
    ("value", "kind", "fm"),
    [
        (f"us.{OPUS}", ProfileKind.SYSTEM_PROFILE, OPUS),
        (f"global.{OPUS}", ProfileKind.SYSTEM_PROFILE, OPUS),
        (f"apac.{HAIKU}", ProfileKind.SYSTEM_PROFILE, HAIKU),
        (f"jp.{HAIKU}", ProfileKind.SYSTEM_PROFILE, HAIKU),
        (
            f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{OPUS}",
            ProfileKind.SYSTEM_PROFILE_ARN,
            OPUS,
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
            ProfileKind.APPLICATION_PROFILE_ARN,
            None,
        ),
        (
            "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:application-inference-profile/abc",
            ProfileKind.APPLICATION_PROFILE_ARN,
            None,
        ),
        (HAIKU, ProfileKind.FOUNDATION_MODEL, HAIKU),
        (f"arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}", ProfileKind.FOUNDATION_MODEL_ARN, HAIKU),
    ],
)
def test_inference_profile_accepts(value: str, kind: ProfileKind, fm: str | None) -> None:
    ref = parse_inference_profile(value)
    assert ref.kind is kind
    assert ref.foundation_model_id == fm
    assert validate_inference_profile(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("opus", "expected an inference profile id"),
        ("", "expected an inference profile id or ARN"),
        ("arn:aws:bedrock:us-east-1:12345:application-inference-profile/abc", "not a Bedrock ARN"),
        ("arn:aws:bedrock:us-east-1::application-inference-profile/abc", "application-inference-profile/ID"),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a-b", "application-inference"),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/anthropic.x", "inference-profile/<geo>"),
        ("arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.x", "foundation-model/<model>"),
        ("arn:aws:bedrock:us-east-1:123456789012:guardrail/abc", "cannot serve as an inference profile"),
        ("arn:aws-cn:bedrock:us-east-1:123456789012:application-inference-profile/abc", "not in partition"),
        ("arn:aws:iam::123456789012:role/x", "not a Bedrock ARN"),
        ("us.anthropic claude", "without spaces"),
    ],
)
def test_inference_profile_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        validate_inference_profile(value)


@pytest.mark.parametrize(
    ("model_id", "override", "region", "problem"),
    [
        ("claude-opus-4-7", f"us.{OPUS}", "us-east-1", None),
        ("claude-opus-4-7", f"global.{OPUS}", "eu-west-1", None),
        ("claude-opus-4-7", f"eu.{OPUS}", "us-east-1", "the eu profile cannot be invoked from us-east-1"),
        ("claude-opus-4-7", f"us.{HAIKU}", "us-east-1", "names anthropic.claude-haiku"),
        ("claude-opus-4-7", OPUS, "us-east-1", "cannot be invoked on demand"),
        ("claude-haiku-4-5", HAIKU, "eu-west-3", None),
        ("claude-haiku-4-5", HAIKU, "sa-east-1", "not offered in sa-east-1"),
        (
            "claude-opus-4-1",
            "global.anthropic.claude-opus-4-1-20250805-v1:0",
            "us-east-1",
            "has no global inference profile",
        ),
        (
            "claude-opus-4-7",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
            "us-east-1",
            None,
        ),
        (
            "claude-opus-4-7",
            "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc",
            "us-east-1",
            "the ARN is in us-west-2",
        ),
        ("gpt-5", f"us.{OPUS}", "us-east-1", "not offered on Bedrock"),
        ("claude-opus-4-7", "bogus value", "us-east-1", "without spaces"),
        ("claude-haiku-4-5", f"jp.{HAIKU}", "ap-northeast-1", None),
    ],
)
def test_override_problem(model_id: str, override: str, region: str, problem: str | None) -> None:
    model = CATALOG.get(model_id)
    assert model is not None
    found = override_problem(model, override, region)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


# --- regions, accounts, URLs, names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-4",
        "us-gov-west-1",
        "cn-north-1",
        "il-central-1",
        "ca-west-1",
        "mx-central-1",
    ],
)
def test_region_accepts(region: str) -> None:
    assert validate_region(region) == region


@pytest.mark.parametrize(
    "region", ["", "us-east", "US-EAST-1", "useast1", "us-east-0", "us_east_1", "global"]
)
def test_region_rejects(region: str) -> None:
    with pytest.raises(InvalidValue, match="region"):
        validate_region(region)


@pytest.mark.parametrize("account", ["123456789012", "000000000000", " 111122223333 "])
def test_account_accepts(account: str) -> None:
    assert validate_account_id(account) == account.strip()


@pytest.mark.parametrize("account", ["12345678901", "1234567890123", "12345678901a", "", 123456789012])
def test_account_rejects(account: object) -> None:
    with pytest.raises(InvalidValue, match="12-digit"):
        validate_account_id(account)


@pytest.mark.parametrize(
    ("url", "allow_http", "expected"),
    [
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            False,
            "https://bedrock-runtime.us-east-1.amazonaws.com",
        ),
        (
            "https://bedrock-runtime-fips.us-east-1.amazonaws.com/",
            False,
            "https://bedrock-runtime-fips.us-east-1.amazonaws.com",
        ),
        (
            "https://vpce-0a1b.bedrock-runtime.us-east-1.vpce.amazonaws.com:443",
            False,
            "https://vpce-0a1b.bedrock-runtime.us-east-1.vpce.amazonaws.com:443",
        ),
        ("http://127.0.0.1:8765/bedrock/", True, "http://127.0.0.1:8765/bedrock"),
        ("https://[::1]:9000", False, "https://[::1]:9000"),
    ],
)
def test_endpoint_url_accepts(url: str, allow_http: bool, expected: str) -> None:
    assert validate_endpoint_url(url, allow_http=allow_http) == expected


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("http://127.0.0.1:8765", False, "scheme https"),
        ("ftp://example.com", True, "scheme https or http"),
        ("example.com", False, "scheme"),
        ("https://user:pass@example.com", False, "credentials are not allowed"),
        ("https://example.com?x=1", False, "query strings"),
        ("https://example.com#frag", False, "fragments"),
        ("https://", False, "no host"),
        ("https://example.com:99999", False, "port"),
        ("https://exa mple.com", False, "without spaces"),
    ],
)
def test_endpoint_url_rejects(url: str, allow_http: bool, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        validate_endpoint_url(url, allow_http=allow_http)


@pytest.mark.parametrize("name", ["platform", "Platform-Team", "a", "nightly_triage.v2", "x" * 63])
def test_name_accepts(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "expected a name"),
        ("-lead", "starting with"),
        ("has space", "without spaces"),
        ("a/b", "letters"),
        ("x" * 64, "1-63"),
        ("HzjUdNkg8Uiq8gp6FMgfxe", "looks like a UID"),
        ("équipe", "letters"),
    ],
)
def test_name_rejects(name: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message) as info:
        validate_name(name, field="team.name")
    assert info.value.field == "team.name"


@given(st.text(max_size=80))
def test_validators_raise_only_invalid_value(text: str) -> None:
    """Whatever an admin types, validators answer with the value or InvalidValue, never another error."""
    for validator in (
        validate_role_arn,
        validate_inference_profile,
        validate_region,
        validate_account_id,
        validate_endpoint_url,
        validate_name,
    ):
        with contextlib.suppress(InvalidValue):
            validator(text)
