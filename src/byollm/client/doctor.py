"""``byollm doctor --local``: is this machine ready to run agents on the team's Bedrock with your credentials?

Each check says what it found, and a failure names its error class and the remediation for it, so the
output is something a user can act on line by line:

1. the client is logged in (gateway URL, token, where the token is kept);
2. the gateway is reachable and the token valid (``GET /api/v1/me``), and which team applies;
3. the AWS credential source: botocore's method, temporary or long-term, expiry;
4. the profile's region against the team's (the team's governs; a difference is reported);
5. the caller identity (STS ``GetCallerIdentity``) and whether the team accepts that account;
6. a test prompt through each model the team routes through Bedrock, which proves your own IAM permissions
   (a fallback to another route counts as a failure of the Bedrock route, with the class it failed with).

No check prints a credential value: only the key's kind (``ASIA``/``AKIA``), account ids and ARNs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from byollm.client.aws import AwsSnapshot, CredentialsExpiredError, NoCredentialsFoundError
from byollm.client.context import ClientContext
from byollm.client.gateway import GatewayError
from byollm.errors import ByollmError, ErrorClass

__all__ = ["Check", "Status", "run_doctor"]


class Status:
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str
    code: str | None = None
    remediation: str | None = None

    @classmethod
    def failed(cls, name: str, error: ErrorClass | str, detail: str, remediation: str | None = None) -> Check:
        if isinstance(error, ErrorClass):
            return cls(name, Status.FAIL, detail, error.code, remediation or error.remediation)
        return cls(name, Status.FAIL, detail, error, remediation)


def _from_exception(name: str, exc: BaseException) -> Check:
    if isinstance(exc, CredentialsExpiredError):
        return Check(name, Status.FAIL, exc.detail, exc.error_class.code, exc.sentence)
    if isinstance(exc, NoCredentialsFoundError):
        return Check(name, Status.FAIL, exc.detail, exc.error_class.code,
                     f"Run `{exc.command}` (or set AWS_PROFILE / `byollm config set profile <name>`).")
    if isinstance(exc, ByollmError):
        return Check.failed(name, exc.error_class, exc.detail)
    if isinstance(exc, GatewayError):
        return Check(name, Status.FAIL, exc.message, exc.code, exc.remediation or None)
    raise exc


def _sts_identity(ctx: ClientContext, snapshot: AwsSnapshot, region: str) -> tuple[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = ctx.aws.sts_client(snapshot, region).get_caller_identity()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch"):
            raise ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED,
                              f"AWS STS refused the credentials ({code})") from None
        raise ByollmError(ErrorClass.INSUFFICIENT_PERMISSIONS, f"AWS STS answered {code}") from None
    except BotoCoreError as exc:
        raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, f"cannot reach AWS STS ({type(exc).__name__})") from None
    return str(answer["Account"]), str(answer["Arn"])


def _failed_attempt(ctx: ClientContext, team: str, request_id: str) -> dict[str, Any] | None:
    """The first failed attempt of ``request_id`` in your own request log (written within ~0.1 s)."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        try:
            rows = ctx.gateway.own_requests(team, limit=20)
        except GatewayError:
            return None
        for row in rows:
            if row.get("request_id") == request_id:
                return next((a for a in row.get("attempts") or [] if a.get("error_code")), None)
        time.sleep(0.2)
    return None


def _model_check(ctx: ClientContext, team: str, model: str) -> Check:
    name = f"Bedrock: {model}"
    try:
        headers, _ = ctx.attacher.headers_for(model)
        _, response_headers = ctx.gateway.message(
            {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "byollm doctor: reply OK"}]},
            headers)
    except (ByollmError, GatewayError) as exc:
        return _from_exception(name, exc)
    route = response_headers.get("x-byollm-route", "")
    fallbacks = int(response_headers.get("x-byollm-fallbacks", "0") or 0)
    if route.startswith("bedrock:") and fallbacks == 0:
        return Check(name, Status.OK, f"answered through {route}")
    attempt = _failed_attempt(ctx, team, response_headers.get("x-request-id", ""))
    code = str(attempt["error_code"]) if attempt else "unknown"
    try:
        error_class: ErrorClass | str = ErrorClass.from_code(code)
    except KeyError:
        error_class = code
    return Check.failed(name, error_class, f"the Bedrock route failed; served by {route or '?'} after {fallbacks}"
                        " fallback(s)", None if attempt else "See your request log: `byollm admin requests`.")


def checks(ctx: ClientContext) -> Iterator[Check]:
    yield Check("client", Status.OK, f"gateway {ctx.gateway.base_url}; token kept in {ctx.store.description}")
    try:
        me = ctx.gateway.me()
        team = ctx.gateway.team_uid()
        settings = ctx.gateway.team_settings(team)
        team_region = str(ctx.gateway.team_bedrock(team).get("region") or "")
    except GatewayError as exc:
        yield _from_exception("gateway", exc)
        return
    yield Check("gateway", Status.OK, f"reachable; token valid ({me.get('kind')} {me.get('principal_uid')});"
                f" team {team}")
    try:
        info = ctx.aws.info()
        snapshot = ctx.aws.snapshot()
    except (ByollmError, GatewayError) as exc:
        yield _from_exception("AWS credentials", exc)
        return
    expiry = (f"expires {info.expires_at.isoformat(timespec='seconds')} ({remaining_lifetime(info.expires_at)})"
              if info.expires_at else "no expiry")
    kind = "long-term keys (AKIA…, no session token)" if info.long_term else f"temporary ({info.key_prefix}…)"
    detail = (f"{info.method} via profile {info.profile or 'default'}; {kind}; {expiry};"
              f" auto-refresh {'on' if ctx.aws.auto_refresh else 'off'}")
    if info.long_term and not settings.get("long_term_keys_allowed"):
        yield Check.failed("AWS credentials", ErrorClass.LONG_TERM_CREDENTIALS_REFUSED,
                           detail + "; the team accepts only session credentials")
    elif info.long_term:
        yield Check("AWS credentials", Status.WARN, detail + "; the team allows them, but prefer `aws login`")
    else:
        yield Check("AWS credentials", Status.OK, detail)
    if info.expires_at is not None and not info.long_term and not ctx.aws.auto_refresh:
        yield Check("auto-refresh", Status.OK, f"off: requests stop when this session's credentials expire"
                    f" ({remaining_lifetime(info.expires_at)}); to keep them fresh as far as the session allows,"
                    " run: byollm config set auto_refresh true")
    if not info.region:
        yield Check("region", Status.OK, f"the profile sets no region; the team's {team_region} applies")
    elif info.region != team_region:
        yield Check("region", Status.WARN, f"your profile's region is {info.region} but the team routes Bedrock"
                    f" through {team_region}; the team's region governs", ErrorClass.REGION_MODEL_MISMATCH.code,
                    f"Set `region = {team_region}` in your AWS profile to avoid surprises in other tools.")
    else:
        yield Check("region", Status.OK, f"{info.region}, the team's region")
    try:
        account, arn = _sts_identity(ctx, snapshot, team_region or info.region or "us-east-1")
    except ByollmError as exc:
        yield _from_exception("caller identity", exc)
        return
    allowed = [str(a) for a in settings.get("allowed_aws_accounts") or []]
    if allowed and account not in allowed:
        yield Check.failed("caller identity", ErrorClass.AWS_ACCOUNT_NOT_ALLOWED,
                           f"{arn}: account {account} is not among the team's accounts ({', '.join(allowed)})")
        return
    yield Check("caller identity", Status.OK,
                f"{arn}; " + ("the team accepts this account" if allowed else "the team accepts any account"))
    try:
        headers, _ = ctx.attacher.headers_for(None)
        models = ctx.gateway.models(headers)
    except (ByollmError, GatewayError) as exc:
        yield _from_exception("models", exc)
        return
    bedrock = [m["id"] for m in models
               if any(r.get("host") == "bedrock" for r in (m.get("byollm") or {}).get("routes") or [])]
    if not bedrock:
        yield Check("models", Status.WARN, "the team routes no model through Bedrock for you")
        return
    for model in bedrock:
        yield _model_check(ctx, team, model)


def run_doctor(ctx: ClientContext, report: Callable[[Check], None]) -> bool:
    """Run every check, reporting each as it finishes; True when none failed."""
    ok = True
    for check in checks(ctx):
        report(check)
        ok = ok and check.status != Status.FAIL
    return ok


def remaining_lifetime(expires_at: datetime, now: datetime | None = None) -> str:
    """How long the credentials have left, for a person: ``42 min left``, ``1 h 5 min left``, ``expired``."""
    seconds = int((expires_at - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "expired"
    if seconds < 60:
        return f"{seconds} s left"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min left" if hours else f"{minutes} min left"
