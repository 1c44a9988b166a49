"""Pure validators for what an admin types in: role ARNs, inference profiles, regions, accounts, URLs, names.

Why here and not in the types: ``policy.types`` are plain values the store rebuilds from rows it already
validated; validation happens once, where input enters (admin API, CLI), so the hot path never re-checks.
Every validator returns the accepted value (whitespace stripped) or raises ``InvalidValue``, a ``ValueError``
(so pydantic turns it into a 422 field error) that names the field and converts to the taxonomy's
``invalid_request`` with ``to_error()``. Messages quote only the offending identifier, never a secret.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from byollm.catalog.types import REGION_PATTERN, CatalogModel, Geography, partition_for_region
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.ids import is_uid

__all__ = [
    "PARTITIONS",
    "InvalidValue",
    "ProfileKind",
    "ProfileRef",
    "RoleArn",
    "override_problem",
    "parse_inference_profile",
    "parse_role_arn",
    "validate_account_id",
    "validate_endpoint_url",
    "validate_inference_profile",
    "validate_name",
    "validate_region",
    "validate_role_arn",
]

PARTITIONS = ("aws", "aws-us-gov", "aws-cn")

_PART = r"(?P<partition>aws|aws-us-gov|aws-cn)"
_ACCT = r"(?P<account>\d{12})"
_REGION = rf"(?P<region>{REGION_PATTERN.pattern})"
# IAM: a path is "/" or "/seg/.../", at most 512 characters; a role name is 1-64 of [\w+=,.@-].
_ROLE_ARN = re.compile(
    rf"arn:{_PART}:iam::{_ACCT}:role(?P<path>/(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]{{1,64}})", re.ASCII
)
# System profile geographies byollm's catalog uses, plus others AWS publishes, so an admin may pin one.
_PROFILE_GEOS = r"(?:global|us|eu|apac|us-gov|jp|au|ca)"
_FM_ID = r"[a-z0-9-]+\.[A-Za-z0-9._:-]{1,200}"
_SYSTEM_PROFILE = re.compile(rf"(?P<geo>{_PROFILE_GEOS})\.(?P<fm>{_FM_ID})")
_FOUNDATION_MODEL = re.compile(rf"(?P<fm>{_FM_ID})")
_BEDROCK_ARN = re.compile(
    rf"arn:{_PART}:bedrock:{_REGION}:(?P<account>\d{{12}})?:(?P<kind>[a-z-]+)/(?P<rest>.+)", re.ASCII
)
_APP_PROFILE_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_ACCOUNT = re.compile(r"\d{12}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class InvalidValue(ValueError):
    """An identifier was refused; ``field`` names the input, the message says what was expected."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.problem = message
        super().__init__(f"{field}: {message}")

    def to_error(self) -> ByollmError:
        return ByollmError(ErrorClass.INVALID_REQUEST, str(self), field=self.field)


def _text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(field, f"expected {what}")
    text = value.strip()
    if any(c.isspace() for c in text):
        raise InvalidValue(field, f"expected {what} without spaces")
    return text


def _partition_matches(partition: str, region: str) -> bool:
    return partition_for_region(region) == partition


@dataclass(frozen=True, slots=True)
class RoleArn:
    """A parsed IAM role ARN; the account id is what the IAM doctor and account allow-lists need."""

    arn: str
    partition: str
    account_id: str
    path: str  # "/" or "/a/b/"
    name: str


def parse_role_arn(value: object, *, field: str = "role_arn") -> RoleArn:
    """Parse ``arn:<partition>:iam::<12-digit account>:role[/path/]<name>`` for aws, aws-us-gov or aws-cn."""
    text = _text(value, field, "an IAM role ARN like arn:aws:iam::123456789012:role/name")
    match = _ROLE_ARN.fullmatch(text)
    if match is None:
        if text.startswith("arn:") and text.split(":")[1:2] and text.split(":")[1] not in PARTITIONS:
            raise InvalidValue(
                field, f"unknown partition in {text!r} (expected one of: {', '.join(PARTITIONS)})"
            )
        raise InvalidValue(
            field, f"expected an IAM role ARN like arn:aws:iam::123456789012:role/name, got {text!r}"
        )
    if len(match["path"]) > 512:
        raise InvalidValue(field, "the role path is longer than 512 characters")
    return RoleArn(text, match["partition"], match["account"], match["path"], match["name"])


def validate_role_arn(value: object, *, field: str = "role_arn") -> str:
    return parse_role_arn(value, field=field).arn


class ProfileKind(StrEnum):
    """What an inference-profile override names."""

    SYSTEM_PROFILE = "system_profile"  # us.anthropic.…, global.anthropic.…
    SYSTEM_PROFILE_ARN = "system_profile_arn"  # arn:…:inference-profile/us.anthropic.…
    APPLICATION_PROFILE_ARN = "application_profile_arn"  # arn:…:application-inference-profile/abc123
    FOUNDATION_MODEL = "foundation_model"  # anthropic.claude-… (single-region, on-demand models only)
    FOUNDATION_MODEL_ARN = "foundation_model_arn"  # arn:…::foundation-model/anthropic.claude-…


@dataclass(frozen=True, slots=True)
class ProfileRef:
    """A parsed override. ``foundation_model_id`` is None for application profiles (known only to AWS)."""

    value: str
    kind: ProfileKind
    foundation_model_id: str | None = None
    geography: str | None = None
    region: str | None = None  # from an ARN
    account_id: str | None = None  # from an ARN


def _parse_bedrock_arn(text: str, field: str) -> ProfileRef:
    match = _BEDROCK_ARN.fullmatch(text)
    if match is None:
        raise InvalidValue(field, f"not a Bedrock ARN for a region: {text!r}")
    partition, region, account, kind, rest = (
        match["partition"],
        match["region"],
        match["account"],
        match["kind"],
        match["rest"],
    )
    if not _partition_matches(partition, region):
        raise InvalidValue(field, f"region {region} is not in partition {partition}")
    if kind == "application-inference-profile":
        if account is None or not _APP_PROFILE_ID.fullmatch(rest):
            raise InvalidValue(
                field,
                "expected arn:aws:bedrock:REGION:ACCOUNT:application-inference-profile/ID"
                f" (12-digit account, alphanumeric id), got {text!r}",
            )
        return ProfileRef(text, ProfileKind.APPLICATION_PROFILE_ARN, region=region, account_id=account)
    if kind == "inference-profile":
        system = _SYSTEM_PROFILE.fullmatch(rest)
        if account is None or system is None:
            raise InvalidValue(
                field,
                f"expected arn:aws:bedrock:REGION:ACCOUNT:inference-profile/<geo>.<model>, got {text!r}",
            )
        return ProfileRef(text, ProfileKind.SYSTEM_PROFILE_ARN, system["fm"], system["geo"], region, account)
    if kind == "foundation-model":
        if account is not None or not _FOUNDATION_MODEL.fullmatch(rest):
            raise InvalidValue(
                field, f"expected arn:aws:bedrock:REGION::foundation-model/<model>, got {text!r}"
            )
        return ProfileRef(text, ProfileKind.FOUNDATION_MODEL_ARN, rest, region=region)
    raise InvalidValue(
        field,
        f"a Bedrock {kind} ARN cannot serve as an inference profile; use an inference profile id or an"
        " application-inference-profile ARN",
    )


def parse_inference_profile(value: object, *, field: str = "inference_profile") -> ProfileRef:
    """Parse an admin's inference-profile override.

    Accepted: a system profile id (``us.anthropic.claude-…``, ``global.…``) or its ARN; an
    application-inference-profile ARN; and a plain foundation-model id or ARN. The last is allowed on purpose:
    an admin who must keep data in one region can pin the single-region model id of an on-demand model
    (``override_problem`` refuses it for models that are not invocable on demand).
    """
    text = _text(value, field, "an inference profile id or ARN")
    if text.startswith("arn:"):
        return _parse_bedrock_arn(text, field)
    system = _SYSTEM_PROFILE.fullmatch(text)
    if system is not None:
        return ProfileRef(text, ProfileKind.SYSTEM_PROFILE, system["fm"], system["geo"])
    if _FOUNDATION_MODEL.fullmatch(text):
        return ProfileRef(text, ProfileKind.FOUNDATION_MODEL, text)
    raise InvalidValue(
        field,
        "expected an inference profile id (us.anthropic.…, global.…), an application-inference-profile ARN"
        f" or a foundation-model id, got {text!r}",
    )


def validate_inference_profile(value: object, *, field: str = "inference_profile") -> str:
    return parse_inference_profile(value, field=field).value


def override_problem(model: CatalogModel, override: str, region: str) -> str | None:
    """Why ``override`` cannot serve ``model`` from ``region``, or None when it can (as far as byollm knows).

    The admin API calls this when a team sets an override or changes its region, so a profile for another
    model, another geography or another region is refused before any request fails upstream. An
    application profile is checked only for its region: what it copies is known only to the account.
    """
    try:
        ref = parse_inference_profile(override)
    except InvalidValue as exc:
        return exc.problem
    if model.bedrock is None:
        return f"{model.id} is not offered on Bedrock"
    if ref.region is not None and ref.region != region:
        return f"the ARN is in {ref.region} but the team's Bedrock region is {region}"
    if ref.kind is ProfileKind.APPLICATION_PROFILE_ARN:
        return None
    fm = model.bedrock.foundation_model_id
    if ref.foundation_model_id != fm:
        return f"{override!r} names {ref.foundation_model_id}, not {model.id} ({fm})"
    if ref.kind in (ProfileKind.FOUNDATION_MODEL, ProfileKind.FOUNDATION_MODEL_ARN):
        if not model.bedrock.on_demand:
            return f"{model.id} cannot be invoked on demand by its bare id; use an inference profile"
        if region not in model.bedrock.regions:
            return f"{model.id} is not offered in {region}"
        return None
    try:
        geo = Geography(ref.geography or "")
    except ValueError:
        return None  # a geography the catalog does not describe (jp., au., …): AWS is the judge
    profile = model.bedrock.profiles.get(geo)
    if profile is None:
        return f"{model.id} has no {geo} inference profile"
    if region not in profile.regions:
        return f"the {geo} profile cannot be invoked from {region}"
    return None


def validate_region(value: object, *, field: str = "region") -> str:
    """An AWS region name such as ``us-east-1``, ``eu-central-2``, ``us-gov-west-1`` or ``cn-north-1``."""
    text = _text(value, field, "an AWS region name like us-east-1")
    if not REGION_PATTERN.fullmatch(text):
        raise InvalidValue(field, f"expected an AWS region name like us-east-1, got {text!r}")
    return text


def validate_account_id(value: object, *, field: str = "account_id") -> str:
    """A 12-digit AWS account id (kept as text: leading zeros are significant)."""
    text = _text(value, field, "a 12-digit AWS account id")
    if not _ACCOUNT.fullmatch(text):
        raise InvalidValue(field, f"expected a 12-digit AWS account id, got {text!r}")
    return text


def validate_endpoint_url(value: object, *, allow_http: bool = False, field: str = "endpoint_url") -> str:
    """A Bedrock endpoint URL (VPC, FIPS, or the simulator): https, or http only when ``allow_http``.

    Refused: user info (credentials do not belong in a URL that is stored and shown), query strings and
    fragments (an endpoint is a base URL). A path is allowed for gateways mounted under a prefix. The
    trailing slash is dropped so callers can join paths.
    """
    text = _text(value, field, "an https URL")
    if len(text) > 2048:
        raise InvalidValue(field, "the URL is longer than 2048 characters")
    parts = urlsplit(text)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        allowed = "https or http" if allow_http else "https (http only for local development)"
        raise InvalidValue(field, f"expected a URL with scheme {allowed}, got {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidValue(field, "credentials are not allowed in the URL")
    if not parts.hostname:
        raise InvalidValue(field, "the URL has no host")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidValue(field, "the URL's port is not a number between 0 and 65535") from None
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InvalidValue(field, "query strings and fragments are not allowed in an endpoint URL")
    return text.rstrip("/") if parts.path else text


def validate_name(value: object, *, field: str = "name") -> str:
    """A team or agent name: 1-63 characters of letters, digits, ``.``, ``_``, ``-``, starting alphanumeric.

    Names appear in CLI arguments and URLs, hence no spaces or slashes. A name shaped like a UID is refused
    so ``--team X`` is never ambiguous between a name and a UID.
    """
    text = _text(value, field, "a name")
    if not _NAME.fullmatch(text):
        raise InvalidValue(
            field,
            f"expected 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, got {text!r}",
        )
    if is_uid(text):
        raise InvalidValue(
            field, f"{text!r} looks like a UID; choose a name that is not 22 letters and digits"
        )
    return text


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)*")
MAX_EMAIL = 254
MAX_LABEL = 100


def _no_controls(text: str, field: str) -> None:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise InvalidValue(field, "control and formatting characters are not allowed")


def validate_email(value: object, *, field: str = "email") -> str:
    """An email address as people type it: one ``@``, a domain without empty labels, no spaces or control characters, at
    most 254 characters (RFC 5321's path limit)."""
    text = _text(value, field, "an email address")
    _no_controls(text, field)
    if len(text) > MAX_EMAIL or not _EMAIL.fullmatch(text):
        raise InvalidValue(field, f"expected an email address like name@example.com, got {text[:80]!r}")
    return text


def validate_label(value: object, *, field: str, allow_empty: bool = False) -> str:
    """Free text people read (a display name, a team or token name): trimmed, at most 100 characters, no
    control or invisible formatting characters (they forge lines in logs and spoof names in the panel)."""
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(field, "expected text")
    text = value.strip()
    if not text and not allow_empty:
        raise InvalidValue(field, "must not be empty")
    if len(text) > MAX_LABEL:
        raise InvalidValue(field, f"at most {MAX_LABEL} characters")
    _no_controls(text, field)
    return text
