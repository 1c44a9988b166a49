"""Reading the customer's IAM and Bedrock control plane with the ADMIN's own AWS credentials.

Why a small protocol: the doctor's checks are pure functions over what AWS says; where the answers come from
is the reader's business. ``BotoAwsReader`` asks AWS through boto3 with botocore's default credential chain
(environment, profiles, SSO, ``aws login``…) and honours endpoint overrides such as ``AWS_ENDPOINT_URL_IAM``
(botocore reads them itself). It runs in the ``byollm doctor`` CLI process only: the server never holds an
admin's AWS credentials, and nothing here logs or returns a credential.

Every failure to read becomes ``AwsReadError`` carrying AWS's error code and message (identifiers only), so a
check can say "could not read: AccessDenied" instead of guessing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AwsReadError", "AwsReader", "BotoAwsReader", "OidcProviderFacts"]


# SimulatePrincipalPolicy's ContextKeyType of the global keys the doctor passes (the rest are strings)
_CONTEXT_TYPES = {"aws:currenttime": "date", "aws:epochtime": "numeric", "aws:securetransport": "boolean",
                  "aws:sourceip": "ip"}


class AwsReadError(Exception):
    """AWS refused or failed a read; ``code`` is AWS's error code (``AccessDenied``, ``NoSuchEntity``…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class OidcProviderFacts:
    arn: str
    url: str
    client_ids: tuple[str, ...]


class AwsReader(Protocol):
    """What the doctor reads from AWS. Methods are synchronous (boto3); the doctor runs them in a thread."""

    def caller_account(self) -> str: ...

    def oidc_provider(self, account_id: str, host: str) -> OidcProviderFacts | None: ...

    def role_trust_policy(self, role_arn: str) -> dict[str, Any] | None: ...

    def simulate(self, role_arn: str, actions: Sequence[str], resources: Sequence[str],
                 context: Mapping[str, Sequence[str]] | None = None) -> dict[tuple[str, str], str]:
        """``SimulatePrincipalPolicy`` decisions (``allowed``, ``implicitDeny``, ``explicitDeny``) by
        (action, resource), with ``context`` (condition key -> values) as the request's context entries."""
        ...

    def foundation_models(self, region: str) -> frozenset[str]: ...

    def inference_profile(self, region: str, ident: str) -> dict[str, Any] | None: ...

    def invocation_logging(self, region: str) -> dict[str, Any] | None: ...

    def invocation_log_has(self, region: str, log_group: str, marker: str) -> bool: ...


@contextmanager
def _mapped() -> Iterator[None]:
    """Map botocore's exceptions to ``AwsReadError`` (one place, as the providers do for upstream errors)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsReadError(str(error.get("Code") or "ClientError"), str(error.get("Message") or "")) from None
    except NoCredentialsError:
        raise AwsReadError("NoCredentials", "no AWS credentials found in the default chain") from None
    except BotoCoreError as exc:
        raise AwsReadError(type(exc).__name__, str(exc)) from None


class BotoAwsReader:
    """``AwsReader`` over boto3 clients built from the default chain (or the given profile)."""

    def __init__(self, *, profile: str | None = None, region: str | None = None) -> None:
        import boto3

        with _mapped():
            self._session = boto3.Session(profile_name=profile, region_name=region)
        self._clients: dict[tuple[str, str | None], Any] = {}

    def _client(self, service: str, region: str | None = None) -> Any:
        key = (service, region)
        if key not in self._clients:
            with _mapped():
                self._clients[key] = self._session.client(
                    service, region_name=region or self._session.region_name or "us-east-1")
        return self._clients[key]

    def caller_account(self) -> str:
        with _mapped():
            return str(self._client("sts").get_caller_identity()["Account"])

    def oidc_provider(self, account_id: str, host: str) -> OidcProviderFacts | None:
        arn = f"arn:aws:iam::{account_id}:oidc-provider/{host}"
        try:
            with _mapped():
                answer = self._client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        except AwsReadError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return OidcProviderFacts(arn=arn, url=str(answer.get("Url", "")),
                                 client_ids=tuple(answer.get("ClientIDList") or ()))

    def role_trust_policy(self, role_arn: str) -> dict[str, Any] | None:
        name = role_arn.rsplit("/", 1)[-1]
        with _mapped():
            role = self._client("iam").get_role(RoleName=name)["Role"]
        document = role.get("AssumeRolePolicyDocument")
        if isinstance(document, str):  # boto3 decodes it; a raw answer is URL-encoded JSON
            import json

            document = json.loads(urllib.parse.unquote(document))
        return document if isinstance(document, dict) else None

    def simulate(self, role_arn: str, actions: Sequence[str], resources: Sequence[str],
                 context: Mapping[str, Sequence[str]] | None = None) -> dict[tuple[str, str], str]:
        decisions: dict[tuple[str, str], str] = {}
        entries = [{"ContextKeyName": key, "ContextKeyValues": list(values),
                    "ContextKeyType": _CONTEXT_TYPES.get(key.lower(), "string")}
                   for key, values in (context or {}).items()]
        with _mapped():
            pages = self._client("iam").get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=role_arn, ActionNames=list(actions), ResourceArns=list(resources),
                ContextEntries=entries)
            for page in pages:
                for result in page.get("EvaluationResults", []):
                    decisions[(str(result["EvalActionName"]), str(result.get("EvalResourceName", "*")))] = str(
                        result["EvalDecision"])
        return decisions

    def foundation_models(self, region: str) -> frozenset[str]:
        with _mapped():
            summaries = self._client("bedrock", region).list_foundation_models().get("modelSummaries", [])
        return frozenset(str(s["modelId"]) for s in summaries)

    def inference_profile(self, region: str, ident: str) -> dict[str, Any] | None:
        try:
            with _mapped():
                answer: Mapping[str, Any] = self._client("bedrock", region).get_inference_profile(
                    inferenceProfileIdentifier=ident)
        except AwsReadError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise
        return {k: v for k, v in answer.items() if k != "ResponseMetadata"}

    def invocation_logging(self, region: str) -> dict[str, Any] | None:
        with _mapped():
            answer = self._client("bedrock", region).get_model_invocation_logging_configuration()
        config = answer.get("loggingConfig")
        return dict(config) if config else None

    def invocation_log_has(self, region: str, log_group: str, marker: str) -> bool:
        with _mapped():
            answer = self._client("logs", region).filter_log_events(
                logGroupName=log_group, filterPattern=f'"{marker}"', limit=1)
        return bool(answer.get("events"))
