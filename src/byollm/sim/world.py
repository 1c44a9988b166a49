"""The simulated world: accounts, IAM, Bedrock model availability, quotas, direct-provider keys, behaviour.

A world is plain data loaded from YAML or JSON (``load_world``) or from the packaged ``default_world.yaml``
(``default_world``). It is deliberately mutable: the admin API (``byollm.sim.admin``) changes trust policies,
OIDC providers, model access and quotas at run time, and ``SimState`` bumps its version so cached compiled
policies are rebuilt. Every loading error names the exact path of the offending field, e.g.
``world: accounts.111122223333.roles.byollm-team.max_session_duration: expected an integer ...``.

Model availability follows real Bedrock: a foundation model is *offered* in a set of regions; it may or may
not accept on-demand invocation by its bare id; system inference profiles ``<geo>.<model id>`` route to the
regions of their geography where the model is offered (``global`` routes to all of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from byollm.sim.iam_policy import PolicyError, validate_trust_policy

__all__ = [
    "AccessKey",
    "Account",
    "ApplicationProfile",
    "Behaviour",
    "FoundationModel",
    "OidcProvider",
    "Quota",
    "Role",
    "User",
    "World",
    "WorldError",
    "default_world",
    "load_world",
    "parse_model",
    "parse_world",
    "stable_id",
    "validate_issuer_url",
]

GEO_PREFIXES = ("global", "us", "eu", "apac")
DIRECT_PROVIDERS = ("anthropic", "openai", "google")
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class WorldError(ValueError):
    """A world file is invalid; the message names the field path and what was expected."""


@dataclass(slots=True)
class OidcProvider:
    """An IAM OIDC identity provider: the issuer URL as registered, its audiences and thumbprints.

    IAM keeps the URL exactly as registered, a trailing slash included: in the provider's name, its ARN
    and its condition-key prefix (``HOST/PATH/:sub``), and a token's ``iss`` must equal it exactly."""

    url: str
    client_ids: list[str]
    thumbprints: list[str] = field(default_factory=list)
    create_date: datetime = _EPOCH

    @property
    def host_path(self) -> str:
        """The URL without scheme: IAM's name for the provider (ARN suffix and condition-key prefix)."""
        return self.url.split("://", 1)[-1]

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:oidc-provider/{self.host_path}"


@dataclass(slots=True)
class Role:
    """An IAM role. ``trust_policy`` may be None until a test installs one at run time."""

    name: str
    role_id: str
    trust_policy: dict[str, Any] | None = None
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_session_duration: int = 3600
    path: str = "/"
    description: str = ""
    create_date: datetime = _EPOCH

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role{self.path}{self.name}"


@dataclass(slots=True)
class AccessKey:
    """A long-term IAM user access key (AKIA…)."""

    access_key_id: str
    secret_access_key: str
    active: bool = True


@dataclass(slots=True)
class User:
    """An IAM user with long-term keys and inline policies (the interactive flow's starting point)."""

    name: str
    user_id: str
    access_keys: list[AccessKey] = field(default_factory=list)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = "/"

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:user{self.path}{self.name}"


@dataclass(slots=True)
class ApplicationProfile:
    """An application inference profile owned by an account, wrapping a system profile or a model ARN."""

    profile_id: str
    name: str
    region: str
    source_arn: str
    create_date: datetime = _EPOCH

    def arn(self, account_id: str) -> str:
        return f"arn:aws:bedrock:{self.region}:{account_id}:application-inference-profile/{self.profile_id}"


@dataclass(slots=True)
class Quota:
    """Per-minute limits for one model in one account; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(slots=True)
class Account:
    """An AWS account: its regions, IAM entities, Bedrock model access, profiles and quotas."""

    account_id: str
    regions: list[str]
    oidc_providers: dict[str, OidcProvider] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    model_access: set[str] = field(default_factory=set)
    application_profiles: dict[str, ApplicationProfile] = field(default_factory=dict)
    quotas: dict[str, Quota] = field(default_factory=dict)
    invocation_logging: bool = False
    # customer managed policies by name (``arn:aws:iam::ACCT:policy/NAME``), usable as session PolicyArns
    managed_policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def managed_policy(self, arn: str) -> dict[str, Any] | None:
        prefix = f"arn:aws:iam::{self.account_id}:policy/"
        if not arn.startswith(prefix):
            return None
        return self.managed_policies.get(arn[len(prefix) :].rsplit("/", 1)[-1])

    def has_model_access(self, model_id: str) -> bool:
        return "*" in self.model_access or model_id in self.model_access

    def quota_for(self, model_id: str) -> Quota | None:
        return self.quotas.get(model_id) or self.quotas.get("*")


@dataclass(frozen=True, slots=True)
class FoundationModel:
    """A Bedrock foundation model and where/how it may be invoked."""

    model_id: str
    catalog_id: str
    name: str
    provider: str
    regions: tuple[str, ...]
    on_demand: bool
    profile_geos: tuple[str, ...]

    def arn(self, region: str) -> str:
        return f"arn:aws:bedrock:{region}::foundation-model/{self.model_id}"


@dataclass(slots=True)
class Behaviour:
    """Latency shaping: time to first token and per-token delay, globally or per model id."""

    time_to_first_token_s: float = 0.0
    per_token_s: float = 0.0
    per_model: dict[str, tuple[float, float]] = field(default_factory=dict)

    def latency(self, model: str | None) -> tuple[float, float]:
        if model is not None and model in self.per_model:
            return self.per_model[model]
        return (self.time_to_first_token_s, self.per_token_s)


@dataclass(slots=True)
class World:
    """Everything the simulator knows. See the module docstring for the model."""

    accounts: dict[str, Account]
    models: dict[str, FoundationModel]
    geos: dict[str, tuple[str, ...]]
    provider_keys: dict[str, list[str]] = field(default_factory=dict)
    behaviour: Behaviour = field(default_factory=Behaviour)
    faults: list[dict[str, Any]] = field(default_factory=list)
    allow_http_loopback_issuers: bool = False
    seed: int = 0
    default_region: str = "us-east-1"

    def profile_regions(self, geo: str, model: FoundationModel) -> tuple[str, ...]:
        """Regions a ``<geo>.`` system profile for ``model`` routes to (offered regions in that geo)."""
        if geo == "global":
            return model.regions
        geo_regions = self.geos.get(geo, ())
        return tuple(r for r in geo_regions if r in model.regions)

    def system_profile(self, profile_id: str) -> tuple[str, FoundationModel] | None:
        """Resolve ``us.anthropic.…`` to (geo, model) when such a system profile exists."""
        geo, _, rest = profile_id.partition(".")
        model = self.models.get(rest)
        if model is None or geo not in model.profile_geos:
            return None
        return geo, model

    def to_json(self) -> dict[str, Any]:
        """The world as JSON-able data, in the same shape ``parse_world`` accepts."""
        return {
            "seed": self.seed,
            "default_region": self.default_region,
            "allow_http_loopback_issuers": self.allow_http_loopback_issuers,
            "geos": {k: list(v) for k, v in self.geos.items()},
            "models": [
                {
                    "id": m.model_id,
                    "catalog_id": m.catalog_id,
                    "name": m.name,
                    "provider": m.provider,
                    "on_demand": m.on_demand,
                    "profiles": list(m.profile_geos),
                    "regions": list(m.regions),
                }
                for m in self.models.values()
            ],
            "accounts": {aid: _account_json(a) for aid, a in self.accounts.items()},
            "direct": {p: {"api_keys": list(keys)} for p, keys in self.provider_keys.items()},
            "behaviour": {
                "time_to_first_token_s": self.behaviour.time_to_first_token_s,
                "per_token_s": self.behaviour.per_token_s,
                "models": {
                    m: {"time_to_first_token_s": t, "per_token_s": p} for m, (t, p) in self.behaviour.per_model.items()
                },
            },
            "faults": list(self.faults),
        }


def _account_json(a: Account) -> dict[str, Any]:
    return {
        "regions": list(a.regions),
        "invocation_logging": a.invocation_logging,
        "model_access": sorted(a.model_access),
        "oidc_providers": [
            {"url": p.url, "client_ids": list(p.client_ids), "thumbprints": list(p.thumbprints)}
            for p in a.oidc_providers.values()
        ],
        "roles": {
            r.name: {
                "role_id": r.role_id,
                "path": r.path,
                "description": r.description,
                "max_session_duration": r.max_session_duration,
                "trust_policy": r.trust_policy,
                "policies": r.policies,
            }
            for r in a.roles.values()
        },
        "users": {
            u.name: {
                "user_id": u.user_id,
                "path": u.path,
                "access_keys": [
                    {"id": k.access_key_id, "secret": k.secret_access_key, "active": k.active} for k in u.access_keys
                ],
                "policies": u.policies,
            }
            for u in a.users.values()
        },
        "application_profiles": [
            {"id": p.profile_id, "name": p.name, "region": p.region, "source": p.source_arn}
            for p in a.application_profiles.values()
        ],
        "quotas": {
            m: {"requests_per_minute": q.requests_per_minute, "tokens_per_minute": q.tokens_per_minute}
            for m, q in a.quotas.items()
        },
        "managed_policies": dict(a.managed_policies),
    }


# --------------------------------------------------------------------------------------------- loading


class _Reader:
    """Typed accessors over untrusted mapping data that report the dotted path of any error."""

    def __init__(self, data: Any, path: str) -> None:
        self.data = data
        self.path = path

    def fail(self, what: str) -> WorldError:
        return WorldError(f"world: {self.path or '<root>'}: {what}")

    def mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.data, Mapping):
            raise self.fail(f"expected a mapping, got {type(self.data).__name__}")
        return self.data

    def child(self, key: str | int) -> _Reader:
        if isinstance(key, int):
            return _Reader(self.data[key], f"{self.path}[{key}]")
        value = self.mapping().get(key)
        return _Reader(value, f"{self.path}.{key}" if self.path else key)

    def present(self, key: str) -> bool:
        return key in self.mapping() and self.mapping()[key] is not None

    def items(self) -> list[tuple[str, _Reader]]:
        if self.data is None:
            return []
        return [(str(k), self.child(k)) for k in self.mapping()]

    def entries(self) -> list[_Reader]:
        if self.data is None:
            return []
        if not isinstance(self.data, list):
            raise self.fail(f"expected a list, got {type(self.data).__name__}")
        return [self.child(i) for i in range(len(self.data))]

    def text(self, default: str | None = None) -> str:
        if self.data is None and default is not None:
            return default
        if isinstance(self.data, bool) or not isinstance(self.data, str | int):
            raise self.fail(f"expected a string, got {self.data!r}")
        return str(self.data)

    def str_list(self) -> list[str]:
        return [r.text() for r in self.entries()]

    def integer(self, default: int | None = None, *, lo: int | None = None, hi: int | None = None) -> int:
        if self.data is None and default is not None:
            return default
        if isinstance(self.data, bool) or not isinstance(self.data, int):
            raise self.fail(f"expected an integer, got {self.data!r}")
        if (lo is not None and self.data < lo) or (hi is not None and self.data > hi):
            raise self.fail(f"expected an integer between {lo} and {hi}, got {self.data}")
        return self.data

    def opt_int(self) -> int | None:
        return None if self.data is None else self.integer()

    def number(self, default: float = 0.0) -> float:
        if self.data is None:
            return default
        if isinstance(self.data, bool) or not isinstance(self.data, int | float) or self.data < 0:
            raise self.fail(f"expected a non-negative number, got {self.data!r}")
        return float(self.data)

    def flag(self, default: bool = False) -> bool:
        if self.data is None:
            return default
        if not isinstance(self.data, bool):
            raise self.fail(f"expected true or false, got {self.data!r}")
        return self.data

    def policy(self) -> dict[str, Any] | None:
        if self.data is None:
            return None
        doc = self.data
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError as exc:
                raise self.fail(f"policy is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise self.fail("expected an IAM policy document with a Statement")
        return dict(doc)


def stable_id(prefix: str, seed: str) -> str:
    """A deterministic IAM-style unique id (AROA…/AIDA…) derived from a name."""
    import hashlib

    digest = hashlib.sha256(seed.encode()).hexdigest().upper()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    body = "".join(alphabet[int(digest[i : i + 2], 16) % 32] for i in range(0, 34, 2))
    return prefix + body


def validate_issuer_url(url: str, *, allow_http_loopback: bool) -> str | None:
    """Why IAM would refuse ``url`` as an OIDC provider URL, or None when it is acceptable.

    Strict mode (real IAM): https, no port, no query or fragment. Loopback mode additionally accepts
    ``http://127.0.0.1:PORT`` / ``http://localhost:PORT`` so tests and the demo can run without TLS.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        return "the URL must have a host and no query or fragment"
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if allow_http_loopback and loopback and parts.scheme in ("http", "https"):
        return None
    if parts.scheme != "https":
        return "the URL must begin with https://"
    if parts.port is not None:
        return "the URL must not contain a port"
    return None


def _parse_model(r: _Reader) -> FoundationModel:
    geos = tuple(r.child("profiles").str_list())
    for i, g in enumerate(geos):
        if g not in GEO_PREFIXES:
            raise (r.child("profiles").child(i).fail(f"unknown geography {g!r}; expected one of {GEO_PREFIXES}"))
    regions = tuple(r.child("regions").str_list())
    if not regions:
        raise r.child("regions").fail("a model must be offered in at least one region")
    model_id = r.child("id").text()
    return FoundationModel(
        model_id=model_id,
        catalog_id=r.child("catalog_id").text(model_id),
        name=r.child("name").text(model_id),
        provider=r.child("provider").text("Anthropic"),
        regions=regions,
        on_demand=r.child("on_demand").flag(True),
        profile_geos=geos,
    )


def parse_model(data: Any, path: str) -> FoundationModel:
    """One foundation model in the world file's shape (the admin API adds models at run time with it)."""
    return _parse_model(_Reader(data, path))


def _parse_account(account_id: str, r: _Reader, allow_http_loopback: bool) -> Account:
    if not (len(account_id) == 12 and account_id.isdigit()):
        raise r.fail("an account id must be 12 digits")
    acct = Account(
        account_id=account_id,
        regions=r.child("regions").str_list(),
        invocation_logging=r.child("invocation_logging").flag(False),
        model_access=set(r.child("model_access").str_list()),
    )
    for pr in r.child("oidc_providers").entries():
        url = pr.child("url").text()
        problem = validate_issuer_url(url, allow_http_loopback=allow_http_loopback)
        if problem:
            raise pr.child("url").fail(problem)
        provider = OidcProvider(
            url=url,
            client_ids=pr.child("client_ids").str_list() or ["sts.amazonaws.com"],
            thumbprints=pr.child("thumbprints").str_list(),
        )
        acct.oidc_providers[provider.host_path] = provider
    for name, rr in r.child("roles").items():
        acct.roles[name] = Role(
            name=name,
            role_id=rr.child("role_id").text(stable_id("AROA", f"{account_id}/{name}")),
            trust_policy=_trust_policy(rr.child("trust_policy")),
            policies={k: _required_policy(v) for k, v in rr.child("policies").items()},
            max_session_duration=rr.child("max_session_duration").integer(3600, lo=3600, hi=43200),
            path=rr.child("path").text("/"),
            description=rr.child("description").text(""),
        )
    for name, mr in r.child("managed_policies").items():
        acct.managed_policies[name] = _required_policy(mr)
    for name, ur in r.child("users").items():
        keys = [
            AccessKey(
                access_key_id=kr.child("id").text(),
                secret_access_key=kr.child("secret").text(),
                active=kr.child("active").flag(True),
            )
            for kr in ur.child("access_keys").entries()
        ]
        for i, k in enumerate(keys):
            if not k.access_key_id.startswith("AKIA"):
                raise ur.child("access_keys").child(i).child("id").fail("long-term keys start with AKIA")
        acct.users[name] = User(
            name=name,
            user_id=ur.child("user_id").text(stable_id("AIDA", f"{account_id}/{name}")),
            access_keys=keys,
            policies={k: _required_policy(v) for k, v in ur.child("policies").items()},
            path=ur.child("path").text("/"),
        )
    for pr in r.child("application_profiles").entries():
        prof = ApplicationProfile(
            profile_id=pr.child("id").text(),
            name=pr.child("name").text(pr.child("id").text()),
            region=pr.child("region").text(),
            source_arn=pr.child("source").text(),
        )
        acct.application_profiles[prof.profile_id] = prof
    for model, qr in r.child("quotas").items():
        acct.quotas[model] = Quota(
            requests_per_minute=qr.child("requests_per_minute").opt_int(),
            tokens_per_minute=qr.child("tokens_per_minute").opt_int(),
        )
    return acct


def _trust_policy(r: _Reader) -> dict[str, Any] | None:
    doc = r.policy()
    if doc is not None:
        try:
            validate_trust_policy(doc)
        except PolicyError as exc:
            raise r.fail(f"MalformedPolicyDocument: {exc}") from None
    return doc


def _required_policy(r: _Reader) -> dict[str, Any]:
    doc = r.policy()
    if doc is None:
        raise r.fail("expected an IAM policy document")
    return doc


def parse_world(data: Any) -> World:
    """Build a World from already-parsed YAML/JSON data, raising WorldError with a field path."""
    root = _Reader(data, "")
    root.mapping()
    allow_http = root.child("allow_http_loopback_issuers").flag(False)
    geos = {g: tuple(r.str_list()) for g, r in root.child("geos").items()}
    models: dict[str, FoundationModel] = {}
    for mr in root.child("models").entries():
        m = _parse_model(mr)
        models[m.model_id] = m
    accounts = {aid: _parse_account(aid, ar, allow_http) for aid, ar in root.child("accounts").items()}
    provider_keys: dict[str, list[str]] = {}
    for provider, pr in root.child("direct").items():
        if provider not in DIRECT_PROVIDERS:
            raise pr.fail(f"unknown provider; expected one of {DIRECT_PROVIDERS}")
        provider_keys[provider] = pr.child("api_keys").str_list()
    br = root.child("behaviour")
    behaviour = Behaviour()
    if br.data is not None:
        behaviour = Behaviour(
            time_to_first_token_s=br.child("time_to_first_token_s").number(),
            per_token_s=br.child("per_token_s").number(),
            per_model={
                m: (r.child("time_to_first_token_s").number(), r.child("per_token_s").number())
                for m, r in br.child("models").items()
            },
        )
    faults = [dict(fr.mapping()) for fr in root.child("faults").entries()]
    return World(
        accounts=accounts,
        models=models,
        geos=geos,
        provider_keys=provider_keys,
        behaviour=behaviour,
        faults=faults,
        allow_http_loopback_issuers=allow_http,
        seed=root.child("seed").integer(0),
        default_region=root.child("default_region").text("us-east-1"),
    )


def load_world(source: str | Path | Mapping[str, Any] | None = None) -> World:
    """Load a world from a YAML/JSON file path, a mapping, or (None) the packaged default world."""
    if source is None:
        return default_world()
    if isinstance(source, Mapping):
        return parse_world(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorldError(f"world: cannot read {path}: {exc.strerror}") from exc
    return parse_world(_parse_text(text, str(path)))


def _parse_text(text: str, name: str) -> Any:
    if name.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise WorldError(f"world: {name} is not valid JSON: {exc}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorldError(f"world: {name} is not valid YAML: {exc}") from exc


def default_world() -> World:
    """The packaged default world (``default_world.yaml``): two accounts, the four Claude models."""
    text = resources.files("byollm.sim").joinpath("default_world.yaml").read_text(encoding="utf-8")
    return parse_world(_parse_text(text, "default_world.yaml"))
