"""The simulator's admin API under ``/_sim`` (JSON in, JSON out; unauthenticated: it is a local test tool).

Inspection
    GET    /_sim/world                         the current world (same shape as a world file, as JSON)
    GET    /_sim/requests?service=&limit=      the request journal (every request received); DELETE clears
    GET    /_sim/invocations                   the Bedrock invocation log; DELETE clears
    POST   /_sim/reset                         back to the world as loaded; journals, sessions, faults cleared

IAM and Bedrock changes (``{acct}`` is a 12-digit account id)
    PUT    /_sim/accounts/{acct}/roles/{role}                     create/replace a role
           {"trust_policy": {...}, "policies": {name: doc}, "max_session_duration": 3600}
    PUT    /_sim/accounts/{acct}/roles/{role}/trust-policy        body: the trust policy document
    PUT    /_sim/accounts/{acct}/roles/{role}/policies/{name}     body: a permission policy; DELETE removes
    PUT    /_sim/accounts/{acct}/managed-policies/{name}          body: a customer managed policy (usable as a
                                                                  session ``PolicyArns`` entry); DELETE removes
    POST   /_sim/accounts/{acct}/oidc-providers                   {"url", "client_ids", "thumbprints"}
    DELETE /_sim/accounts/{acct}/oidc-providers?url=URL
    POST   /_sim/accounts/{acct}/web-identity-trust               register issuer + trust in one call:
           {"issuer": URL, "role": "byollm-team", "subject": "scoped_principal:team-1/*",
            "audience": "sts.amazonaws.com"}
    PUT    /_sim/accounts/{acct}/application-profiles/{id}        {"region", "source": profile or model ARN,
                                                                   "name"}; DELETE removes
    PUT    /_sim/accounts/{acct}/model-access/{model_id}          grant (``*`` for all); DELETE revokes
    PUT    /_sim/models/{model_id}     a foundation model Bedrock offers from now on (body: the world file's
                                       fields: catalog_id, name, provider, on_demand, profiles, regions);
                                       DELETE withdraws it
    PUT    /_sim/accounts/{acct}/quotas/{model_id|*}              {"requests_per_minute", "tokens_per_minute"}
    PUT    /_sim/accounts/{acct}/invocation-logging               {"enabled": true}
    PUT    /_sim/settings                                         {"allow_http_loopback_issuers": bool}
    POST   /_sim/credentials/{access_key_id}/expire               make temporary credentials expired

Behaviour and faults
    PUT    /_sim/behaviour          {"time_to_first_token_s", "per_token_s", "model": optional model id}
    GET    /_sim/faults             list; POST adds a rule (see ``byollm.sim.faults``); DELETE clears all;
    DELETE /_sim/faults/{id}        removes one

Test OIDC issuers hosted by the simulator (issuer URL = ``<sim>/_sim/issuers/{name}``)
    PUT    /_sim/issuers/{name}     body: a JWKS ``{"keys": [...]}``; answers {"issuer": URL}
    GET    /_sim/issuers/{name}/.well-known/openid-configuration
    GET    /_sim/issuers/{name}/jwks.json
    DELETE /_sim/issuers/{name}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from byollm.sim.iam_policy import PolicyError, compile_policies, validate_trust_policy
from byollm.sim.state import SimState
from byollm.sim.world import (
    Account,
    ApplicationProfile,
    OidcProvider,
    Quota,
    Role,
    WorldError,
    parse_model,
    stable_id,
    validate_issuer_url,
)

__all__ = ["admin_routes"]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request], Awaitable[Any]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except AdminError as err:
            return JSONResponse({"error": err.message}, status_code=err.status)
        except (ValueError, WorldError, PolicyError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        if isinstance(result, Response):
            return result
        return JSONResponse(result if result is not None else {"ok": True})

    return endpoint


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise AdminError(400, "the body must be JSON") from None


def _policy(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise AdminError(400, "a policy must be a JSON object")
    compile_policies([doc])
    return doc


def _trust_policy(doc: Any) -> dict[str, Any]:
    """A role trust policy, refused as IAM refuses it (``MalformedPolicyDocument: Has prohibited field …``)."""
    if not isinstance(doc, dict):
        raise AdminError(400, "a policy must be a JSON object")
    try:
        validate_trust_policy(doc)
    except PolicyError as exc:
        raise AdminError(400, f"MalformedPolicyDocument: {exc}") from None
    return doc


class _Admin:
    def __init__(self, state: SimState) -> None:
        self.s = state

    def account(self, request: Request) -> Account:
        acct = self.s.account(request.path_params["acct"])
        if acct is None:
            raise AdminError(404, f"unknown account {request.path_params['acct']}")
        return acct

    def role(self, request: Request) -> Role:
        role = self.account(request).roles.get(request.path_params["role"])
        if role is None:
            raise AdminError(404, f"unknown role {request.path_params['role']}")
        return role

    # -------------------------------------------------------------- inspection

    async def world(self, request: Request) -> Any:
        return self.s.world.to_json()

    async def requests(self, request: Request) -> Any:
        if request.method == "DELETE":
            self.s.journal.clear()
            return None
        limit = request.query_params.get("limit")
        entries = self.s.journal.dump(service=request.query_params.get("service"), limit=int(limit) if limit else None)
        return {"requests": entries}

    async def invocations(self, request: Request) -> Any:
        if request.method == "DELETE":
            self.s.invocations.clear()
            return None
        return {"invocations": self.s.invocations.entries()}

    async def reset(self, request: Request) -> Any:
        self.s.reset()
        return None

    # -------------------------------------------------------------- IAM

    async def put_role(self, request: Request) -> Any:
        acct = self.account(request)
        name = request.path_params["role"]
        data = await _json(request)
        if not isinstance(data, dict):
            raise AdminError(400, "expected a JSON object")
        trust = data.get("trust_policy")
        acct.roles[name] = Role(
            name=name,
            role_id=stable_id("AROA", f"{acct.account_id}/{name}"),
            trust_policy=_trust_policy(trust) if trust is not None else None,
            policies={k: _policy(v) for k, v in (data.get("policies") or {}).items()},
            max_session_duration=int(data.get("max_session_duration", 3600)),
        )
        self.s.world_changed()
        return {"arn": acct.roles[name].arn(acct.account_id)}

    async def trust_policy(self, request: Request) -> Any:
        role = self.role(request)
        role.trust_policy = _trust_policy(await _json(request))
        self.s.world_changed()
        return None

    async def role_policy(self, request: Request) -> Any:
        role = self.role(request)
        name = request.path_params["name"]
        if request.method == "DELETE":
            if role.policies.pop(name, None) is None:
                raise AdminError(404, f"unknown policy {name}")
        else:
            role.policies[name] = _policy(await _json(request))
        self.s.world_changed()
        return None

    async def managed_policy(self, request: Request) -> Any:
        acct = self.account(request)
        name = request.path_params["name"]
        if request.method == "DELETE":
            if acct.managed_policies.pop(name, None) is None:
                raise AdminError(404, f"unknown policy {name}")
        else:
            acct.managed_policies[name] = _policy(await _json(request))
        self.s.world_changed()
        return {"arn": f"arn:aws:iam::{acct.account_id}:policy/{name}"}

    def _register_provider(
        self, acct: Account, url: str, client_ids: list[str], thumbprints: list[str]
    ) -> OidcProvider:
        problem = validate_issuer_url(url, allow_http_loopback=self.s.world.allow_http_loopback_issuers)
        if problem:
            raise AdminError(400, f"invalid OIDC provider URL {url}: {problem}")
        provider = OidcProvider(url=url, client_ids=client_ids, thumbprints=thumbprints)
        existing = acct.oidc_providers.get(provider.host_path)
        if existing is not None:
            for cid in client_ids:
                if cid not in existing.client_ids:
                    existing.client_ids.append(cid)
            provider = existing
        acct.oidc_providers[provider.host_path] = provider
        self.s.jwks_cache.clear()
        self.s.world_changed()
        return provider

    async def providers(self, request: Request) -> Any:
        acct = self.account(request)
        if request.method == "DELETE":
            url = request.query_params.get("url", "")
            host_path = url.split("://", 1)[-1]
            if acct.oidc_providers.pop(host_path, None) is None:
                raise AdminError(404, f"no OIDC provider for {url}")
            self.s.world_changed()
            return None
        data = await _json(request)
        provider = self._register_provider(
            acct,
            str(data.get("url", "")),
            [str(c) for c in data.get("client_ids") or ["sts.amazonaws.com"]],
            [str(t) for t in data.get("thumbprints") or []],
        )
        return {"arn": provider.arn(acct.account_id)}

    async def web_identity_trust(self, request: Request) -> Any:
        acct = self.account(request)
        data = await _json(request)
        audience = str(data.get("audience", "sts.amazonaws.com"))
        provider = self._register_provider(acct, str(data.get("issuer", "")), [audience], [])
        role = acct.roles.get(str(data.get("role", "")))
        if role is None:
            raise AdminError(404, f"unknown role {data.get('role')}")
        subjects = data.get("subjects") or [data.get("subject", "*")]
        prefix = provider.host_path
        role.trust_policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider.arn(acct.account_id)},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{prefix}:aud": audience},
                        "StringLike": {f"{prefix}:sub": [str(s) for s in subjects]},
                    },
                }
            ],
        }
        self.s.world_changed()
        return {
            "provider_arn": provider.arn(acct.account_id),
            "role_arn": role.arn(acct.account_id),
            "trust_policy": role.trust_policy,
        }

    # -------------------------------------------------------------- Bedrock

    async def model_access(self, request: Request) -> Any:
        acct = self.account(request)
        model = request.path_params["model"]
        if request.method == "DELETE":
            if model == "*":
                acct.model_access.clear()
            elif "*" in acct.model_access:
                acct.model_access = {m for m in self.s.world.models if m != model}
            else:
                acct.model_access.discard(model)
        else:
            acct.model_access.add(model)
        self.s.world_changed()
        return {"model_access": sorted(acct.model_access)}

    async def foundation_model(self, request: Request) -> Any:
        """A model released (or withdrawn) while the simulator runs, as a cloud ships one on its release day."""
        model_id = request.path_params["model"]
        if request.method == "DELETE":
            if self.s.world.models.pop(model_id, None) is None:
                raise AdminError(404, f"unknown foundation model {model_id}")
            self.s.world_changed()
            return None
        data = await _json(request)
        if not isinstance(data, dict):
            raise AdminError(400, "body must be a JSON object")
        model = parse_model({**data, "id": model_id}, f"models.{model_id}")
        self.s.world.models[model.model_id] = model
        self.s.world_changed()
        return {"model_id": model.model_id, "regions": list(model.regions)}

    async def application_profile(self, request: Request) -> Any:
        acct = self.account(request)
        profile_id = request.path_params["profile"]
        if request.method == "DELETE":
            if acct.application_profiles.pop(profile_id, None) is None:
                raise AdminError(404, f"unknown application inference profile {profile_id}")
            self.s.world_changed()
            return None
        data = await _json(request)
        region = str(data.get("region", self.s.world.default_region))
        source = str(data.get("source", ""))
        if not source.startswith("arn:aws:bedrock:"):
            raise AdminError(400, "source must be an inference-profile or foundation-model ARN")
        profile = ApplicationProfile(
            profile_id=profile_id, name=str(data.get("name", profile_id)), region=region, source_arn=source
        )
        acct.application_profiles[profile_id] = profile
        self.s.world_changed()
        return {"arn": profile.arn(acct.account_id)}

    async def quotas(self, request: Request) -> Any:
        acct = self.account(request)
        data = await _json(request)
        acct.quotas[request.path_params["model"]] = Quota(
            requests_per_minute=data.get("requests_per_minute"),
            tokens_per_minute=data.get("tokens_per_minute"),
        )
        self.s.quotas.clear()
        self.s.world_changed()
        return None

    async def invocation_logging(self, request: Request) -> Any:
        acct = self.account(request)
        acct.invocation_logging = bool((await _json(request)).get("enabled", True))
        self.s.world_changed()
        return None

    async def settings(self, request: Request) -> Any:
        data = await _json(request)
        if "allow_http_loopback_issuers" in data:
            self.s.world.allow_http_loopback_issuers = bool(data["allow_http_loopback_issuers"])
        self.s.world_changed()
        return None

    async def expire(self, request: Request) -> Any:
        if not self.s.expire_credentials(request.path_params["key"]):
            raise AdminError(404, "unknown temporary access key")
        return None

    # -------------------------------------------------------------- behaviour and faults

    async def behaviour(self, request: Request) -> Any:
        data = await _json(request)
        ttft = float(data.get("time_to_first_token_s", 0.0))
        per_token = float(data.get("per_token_s", 0.0))
        if ttft < 0 or per_token < 0:
            raise AdminError(400, "delays must be non-negative")
        b = self.s.world.behaviour
        if data.get("model"):
            b.per_model[str(data["model"])] = (ttft, per_token)
        else:
            b.time_to_first_token_s, b.per_token_s = ttft, per_token
        return None

    async def faults(self, request: Request) -> Any:
        if request.method == "DELETE":
            self.s.faults.clear()
            return None
        if request.method == "POST":
            data = await _json(request)
            items = data if isinstance(data, list) else [data]
            return {"faults": [self.s.faults.add(item).to_json() for item in items]}
        return {"faults": [r.to_json() for r in self.s.faults.rules()]}

    async def fault(self, request: Request) -> Any:
        if not self.s.faults.remove(request.path_params["rule"]):
            raise AdminError(404, "unknown fault rule")
        return None

    # -------------------------------------------------------------- hosted test issuers

    def _issuer_url(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + f"/_sim/issuers/{request.path_params['name']}"

    async def issuer(self, request: Request) -> Any:
        name = request.path_params["name"]
        if request.method == "DELETE":
            self.s.issuers.pop(name, None)
            return None
        data = await _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise AdminError(400, 'expected a JWKS: {"keys": [...]}')
        self.s.issuers[name] = data
        self.s.jwks_cache.clear()
        return {"issuer": self._issuer_url(request)}

    async def discovery(self, request: Request) -> Any:
        if request.path_params["name"] not in self.s.issuers:
            raise AdminError(404, "unknown issuer")
        issuer = self._issuer_url(request)
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    async def jwks(self, request: Request) -> Any:
        jwks = self.s.issuers.get(request.path_params["name"])
        if jwks is None:
            raise AdminError(404, "unknown issuer")
        return JSONResponse(jwks, headers={"cache-control": "max-age=1"})


def admin_routes(state: SimState) -> list[BaseRoute]:
    """Routes to mount at ``/_sim``."""
    a = _Admin(state)
    acct = "/accounts/{acct}"
    table: list[tuple[str, Handler, list[str]]] = [
        ("/world", a.world, ["GET"]),
        ("/requests", a.requests, ["GET", "DELETE"]),
        ("/invocations", a.invocations, ["GET", "DELETE"]),
        ("/reset", a.reset, ["POST"]),
        (f"{acct}/roles/{{role}}", a.put_role, ["PUT"]),
        (f"{acct}/roles/{{role}}/trust-policy", a.trust_policy, ["PUT"]),
        (f"{acct}/roles/{{role}}/policies/{{name}}", a.role_policy, ["PUT", "DELETE"]),
        (f"{acct}/managed-policies/{{name}}", a.managed_policy, ["PUT", "DELETE"]),
        (f"{acct}/oidc-providers", a.providers, ["POST", "DELETE"]),
        (f"{acct}/web-identity-trust", a.web_identity_trust, ["POST"]),
        (f"{acct}/application-profiles/{{profile}}", a.application_profile, ["PUT", "DELETE"]),
        (f"{acct}/model-access/{{model:path}}", a.model_access, ["PUT", "DELETE"]),
        (f"{acct}/quotas/{{model:path}}", a.quotas, ["PUT"]),
        ("/models/{model:path}", a.foundation_model, ["PUT", "DELETE"]),
        (f"{acct}/invocation-logging", a.invocation_logging, ["PUT"]),
        ("/settings", a.settings, ["PUT"]),
        ("/credentials/{key}/expire", a.expire, ["POST"]),
        ("/behaviour", a.behaviour, ["PUT"]),
        ("/faults", a.faults, ["GET", "POST", "DELETE"]),
        ("/faults/{rule}", a.fault, ["DELETE"]),
        ("/issuers/{name}", a.issuer, ["PUT", "DELETE"]),
        ("/issuers/{name}/.well-known/openid-configuration", a.discovery, ["GET"]),
        ("/issuers/{name}/jwks.json", a.jwks, ["GET"]),
    ]
    return [Route(path, _endpoint(handler), methods=methods) for path, handler, methods in table]
