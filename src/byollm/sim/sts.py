"""STS (query protocol, XML): AssumeRoleWithWebIdentity, AssumeRole, GetCallerIdentity, GetSessionToken.

Also home of the query-protocol rendering shared with IAM (``QueryError``, ``xml_response``,
``xml_error``): results are ``<{Action}Response xmlns=…><{Action}Result>…</…Result><ResponseMetadata>``
and errors ``<ErrorResponse><Error><Type>Sender</Type><Code/><Message/></Error><RequestId/>``, exactly what
botocore's query parser expects.

AssumeRoleWithWebIdentity is unsigned (boto3 sends no Authorization header). The token is validated by
``byollm.sim.webidentity``; the role's trust policy is then evaluated with the Federated principal of the
provider and the ``HOST:sub``/``:aud``/``:amr`` condition keys. The issued credentials carry the role's
permission policies (intersected with an optional session ``Policy``) on every later SigV4 call.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import datetime
from xml.sax.saxutils import escape

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from byollm.sim.faults import Fault, apply_transport_fault
from byollm.sim.iam_policy import EXPLICIT_DENY, PolicyError, compile_policies
from byollm.sim.sigv4 import SigV4Error, Verified
from byollm.sim.state import SimState
from byollm.sim.webidentity import WebIdentityError, WebIdentityValidator, condition_context
from byollm.sim.world import Account

__all__ = ["STS_NAMESPACE", "QueryError", "StsService", "iso8601", "xml_error", "xml_response"]

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_SESSION_NAME = re.compile(r"[\w+=,.@-]*\Z")
_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})\Z")

_STATUS = {
    "InvalidIdentityToken": 400,
    "IDPRejectedClaim": 403,
    "IDPCommunicationError": 400,
    "ExpiredTokenException": 400,
    "AccessDenied": 403,
    "ValidationError": 400,
    "MalformedPolicyDocument": 400,
    "PackedPolicyTooLarge": 400,
    "RegionDisabledException": 403,
}


class QueryError(Exception):
    """An error to render as a query-protocol ErrorResponse."""

    def __init__(self, code: str, message: str, status: int | None = None, *, sender: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS.get(code, 400)
        self.sender = sender

    @classmethod
    def from_sigv4(cls, err: SigV4Error) -> QueryError:
        return cls(err.code("query"), err.message, err.status)


def iso8601(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def xml_response(action: str, namespace: str, result_xml: str, request_id: str) -> Response:
    body = (
        f'<{action}Response xmlns="{namespace}">\n'
        f"  <{action}Result>\n{result_xml}\n  </{action}Result>\n"
        f"  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n"
        f"</{action}Response>\n"
    )
    return Response(body, media_type="text/xml", headers={"x-amzn-RequestId": request_id})


def xml_error(namespace: str, err: QueryError, request_id: str) -> Response:
    body = (
        f'<ErrorResponse xmlns="{namespace}">\n'
        f"  <Error>\n    <Type>{'Sender' if err.sender else 'Receiver'}</Type>\n"
        f"    <Code>{escape(err.code)}</Code>\n    <Message>{escape(err.message)}</Message>\n  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
    )
    return Response(body, status_code=err.status, media_type="text/xml", headers={"x-amzn-RequestId": request_id})


def _x(value: object) -> str:
    return escape(str(value))


class StsService:
    """The STS actions. ``call`` returns the response or raises QueryError."""

    ACTIONS = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity", "GetSessionToken"})
    UNSIGNED = frozenset({"AssumeRoleWithWebIdentity"})

    def __init__(self, state: SimState) -> None:
        self._state = state
        self._tokens = WebIdentityValidator(state)

    async def call(self, action: str, params: Mapping[str, str], caller: Verified | None, request_id: str) -> Response:
        fault = self._state.faults.take("sts", principal=caller.principal.arn if caller else params.get("RoleArn"))
        if fault is not None:
            if fault.error is not None:
                raise QueryError(fault.error, fault.message or "Injected fault", fault.status)
            if fault.timeout or fault.reset:
                return _TransportFault(fault)
            await asyncio.sleep(fault.delay_s)
        if action == "AssumeRoleWithWebIdentity":
            result = await self._assume_role_with_web_identity(params)
        elif action == "GetCallerIdentity":
            assert caller is not None
            p = caller.principal
            result = (
                f"    <Arn>{_x(p.arn)}</Arn>\n    <UserId>{_x(p.user_id)}</UserId>\n"
                f"    <Account>{p.account_id}</Account>"
            )
        elif action == "AssumeRole":
            assert caller is not None
            result = self._assume_role(params, caller)
        else:
            assert caller is not None
            result = self._get_session_token(params, caller)
        return xml_response(action, STS_NAMESPACE, result, request_id)

    def _assume_role(self, params: Mapping[str, str], caller: Verified) -> str:
        """AssumeRole for profiles with ``role_arn`` + ``source_profile`` (the interactive flow).

        The role's trust policy must name the caller (or its account root, in which case the caller's own
        policies must also allow ``sts:AssumeRole`` on the role), as IAM requires within an account.
        """
        role_arn = _required(params, "RoleArn", "roleArn")
        session = _session_name(_required(params, "RoleSessionName", "roleSessionName"))
        duration = _duration(params, default=3600, hi=43200)
        match = _ROLE_ARN.match(role_arn)
        if match is None:
            raise QueryError("ValidationError", f"{role_arn} is invalid")
        account_id, role_name = match.groups()
        p = caller.principal
        denied = QueryError(
            "AccessDenied",
            f"User: {p.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            403,
        )
        account = self._state.account(account_id)
        role = account.roles.get(role_name) if account else None
        if role is None or role.trust_policy is None:
            raise denied
        caller_arn = f"arn:aws:iam::{p.account_id}:role/{p.name}" if p.kind == "assumed-role" else p.arn
        trust = compile_policies([role.trust_policy])
        named = trust.evaluate("sts:AssumeRole", None, principal=("AWS", caller_arn))
        if named.decision == EXPLICIT_DENY:
            raise denied
        if not named.allowed:
            via_root = trust.evaluate("sts:AssumeRole", None, principal=("AWS", f"arn:aws:iam::{p.account_id}:root"))
            own = self._state.identity_policies(p).evaluate("sts:AssumeRole", role_arn)
            if not (via_root.allowed and own.allowed):
                raise denied
        if duration > role.max_session_duration:
            raise QueryError(
                "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            )
        assumed_arn = f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session}"
        creds = self._state.issue_session_credentials(
            account_id=account_id,
            principal_arn=assumed_arn,
            duration_s=duration,
            session_policy=_session_policy(params, account),
        )
        return (
            _credentials_xml(creds.access_key_id, creds.secret_access_key, creds.session_token, creds.expiration)
            + f"\n    <AssumedRoleUser>\n      <AssumedRoleId>{_x(role.role_id)}:{_x(session)}</AssumedRoleId>\n"
            f"      <Arn>{_x(assumed_arn)}</Arn>\n    </AssumedRoleUser>"
        )

    def _get_session_token(self, params: Mapping[str, str], caller: Verified) -> str:
        if caller.identity.session_token is not None or caller.principal.kind != "user":
            raise QueryError("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
        duration = _duration(params, default=43200, hi=129600)
        creds = self._state.issue_session_credentials(
            account_id=caller.principal.account_id, principal_arn=caller.principal.arn, duration_s=duration
        )
        return _credentials_xml(creds.access_key_id, creds.secret_access_key, creds.session_token, creds.expiration)

    async def _assume_role_with_web_identity(self, params: Mapping[str, str]) -> str:
        role_arn = _required(params, "RoleArn", "roleArn")
        session = _session_name(_required(params, "RoleSessionName", "roleSessionName"))
        token = _required(params, "WebIdentityToken", "webIdentityToken")
        if not 4 <= len(token) <= 20000:
            raise _validation("***", "webIdentityToken", "Member must have length between 4 and 20000")
        duration = _duration(params, default=3600, hi=43200)
        match = _ROLE_ARN.match(role_arn)
        if match is None:
            raise QueryError("ValidationError", f"{role_arn} is invalid")
        account_id, role_name = match.groups()
        denied = QueryError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        # An unknown account has no providers: the token then fails as if its issuer were unregistered.
        account = self._state.account(account_id) or Account(account_id=account_id, regions=[])
        try:
            validated = await self._tokens.validate(token, account)
        except WebIdentityError as err:
            raise QueryError(err.code, err.message) from None
        role = account.roles.get(role_name)
        if role is None or role.trust_policy is None:
            raise denied
        try:
            trust = compile_policies([role.trust_policy])
        except PolicyError:
            raise denied from None
        decision = trust.evaluate(
            "sts:AssumeRoleWithWebIdentity",
            None,
            condition_context(validated),
            principal=("Federated", validated.provider.arn(account_id)),
        )
        if not decision.allowed:
            raise denied
        if duration > role.max_session_duration:
            raise QueryError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        session_policy = _session_policy(params, account)
        assumed_arn = f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session}"
        creds = self._state.issue_session_credentials(
            account_id=account_id,
            principal_arn=assumed_arn,
            duration_s=duration,
            session_policy=session_policy,
        )
        sub = str(validated.claims["sub"])
        return (
            _credentials_xml(creds.access_key_id, creds.secret_access_key, creds.session_token, creds.expiration)
            + f"\n    <SubjectFromWebIdentityToken>{_x(sub)}</SubjectFromWebIdentityToken>\n"
            f"    <AssumedRoleUser>\n      <AssumedRoleId>{_x(role.role_id)}:{_x(session)}</AssumedRoleId>\n"
            f"      <Arn>{_x(assumed_arn)}</Arn>\n    </AssumedRoleUser>\n"
            f"    <Provider>{_x(validated.provider.arn(account_id))}</Provider>\n"
            f"    <Audience>{_x(validated.audience)}</Audience>"
        )


class _TransportFault(Response):
    """A hang or a dropped connection instead of an answer (see ``byollm.sim.faults``)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self._fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await apply_transport_fault(self._fault, scope, receive, send)


def _credentials_xml(access_key_id: str, secret: str, token: str, expiration: datetime) -> str:
    return (
        f"    <Credentials>\n      <AccessKeyId>{access_key_id}</AccessKeyId>\n"
        f"      <SecretAccessKey>{_x(secret)}</SecretAccessKey>\n"
        f"      <SessionToken>{_x(token)}</SessionToken>\n"
        f"      <Expiration>{iso8601(expiration)}</Expiration>\n    </Credentials>"
    )


def _validation(value: str, field: str, constraint: str) -> QueryError:
    return QueryError(
        "ValidationError",
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}",
    )


def _session_name(session: str) -> str:
    if not 2 <= len(session) <= 64:
        raise _validation(session, "roleSessionName", "Member must have length between 2 and 64")
    if not _SESSION_NAME.match(session):
        raise _validation(session, "roleSessionName", "Member must satisfy regular expression pattern: [\\w+=,.@-]*")
    return session


def _required(params: Mapping[str, str], name: str, field: str) -> str:
    value = params.get(name)
    if value is None:
        raise QueryError(
            "ValidationError",
            f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: "
            "Member must not be null",
        )
    return value


def _duration(params: Mapping[str, str], *, default: int, hi: int) -> int:
    raw = params.get("DurationSeconds")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _validation(raw, "durationSeconds", "Member must be an integer") from None
    if value < 900:
        raise _validation(raw, "durationSeconds", "Member must have value greater than or equal to 900")
    if value > hi:
        raise _validation(raw, "durationSeconds", f"Member must have value less than or equal to {hi}")
    return value


def _session_policy(params: Mapping[str, str], account: Account | None) -> dict[str, object] | None:
    """The session policy of the credentials being issued: the inline ``Policy`` and the managed policies
    named by ``PolicyArns`` (up to 10), merged into one document. The session may then do only what both
    the role's policies and this document allow. None when neither parameter is given."""
    raw = params.get("Policy")
    statements: list[object] = []
    if raw is not None:
        if len(raw) > 2048:
            raise QueryError("PackedPolicyTooLarge", "Packed size of the session policy exceeds the limit")
        try:
            doc = json.loads(raw)
            compile_policies([doc])
        except (ValueError, PolicyError) as exc:
            raise QueryError("MalformedPolicyDocument", f"The policy is not in the valid JSON format: {exc}") from None
        if not isinstance(doc, dict):
            raise QueryError("MalformedPolicyDocument", "The policy is not in the valid JSON format.")
        body = doc["Statement"]
        statements.extend(body if isinstance(body, list) else [body])
    arns = list_members(params, "PolicyArns", "arn")
    if len(arns) > 10:
        raise _validation(str(len(arns)), "policyArns", "Member must have length less than or equal to 10")
    for arn in arns:
        managed = account.managed_policy(arn) if account is not None else None
        if managed is None:
            raise QueryError("MalformedPolicyDocument", f"Policy {arn} does not exist or is not attachable.")
        body = managed["Statement"]
        statements.extend(body if isinstance(body, list) else [body])
    if raw is None and not arns:
        return None
    return {"Version": "2012-10-17", "Statement": statements}


def list_members(params: Mapping[str, str], name: str, field: str) -> list[str]:
    """Query-protocol list of structures ``Name.member.N.Field``, in order."""
    out = []
    i = 1
    while f"{name}.member.{i}.{field}" in params:
        out.append(params[f"{name}.member.{i}.{field}"])
        i += 1
    return out
