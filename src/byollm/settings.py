"""Operator settings, read once from the environment into one frozen value.

Why a plain dataclass: every component receives the settings it needs from ``build_services(settings)``;
nothing reads the environment on its own, so tests build a ``Settings`` directly and two apps with different
settings can live in one process.

Environment variables (all optional):

- ``BYOLLM_DATA_DIR``: where the embedded defaults live (SQLite file, key-encryption key file);
  default ``$XDG_DATA_HOME/byollm`` or ``~/.local/share/byollm``.
- ``BYOLLM_DATABASE_URL``: ``sqlite:///path`` or ``postgresql://user@host/db``; default a SQLite file in the
  data directory. Sync-style URLs are accepted and mapped to the async drivers.
- ``BYOLLM_KEK``: the key-encryption key (urlsafe base64 of 32 bytes). Without it the key lives in a 0600
  file ``kek`` in the data directory, created on first use.
- ``BYOLLM_KEK_FILE``: a file holding the key-encryption key (a secret mount); preferred over ``BYOLLM_KEK``,
  which ``byollm serve`` and ``byollm worker`` erase from their environment once read (``byollm.secret_env``).
- ``BYOLLM_KEK_PREVIOUS``: during rotation, the key being retired (comma-separated if several).
- ``BYOLLM_CATALOG_FILE``: an operator's catalog file extending the built-in model catalog.
- ``BYOLLM_PUBLIC_URL``: the gateway's public base URL (also the OIDC issuer by default).
- ``BYOLLM_ALLOW_HTTP_ENDPOINTS``: ``1`` lets admins set plain-http Bedrock endpoint URLs (the demo and
  tests point teams at the local simulator); off by default.
- ``BYOLLM_ALLOWED_INTERNAL_NETWORKS``: comma-separated CIDRs (``127.0.0.0/8,10.20.0.0/16``) of internal
  networks a team's Bedrock endpoint URL may point at. Admin-set endpoints that are, or resolve to, loopback,
  private, link-local (the cloud metadata service), CGNAT, multicast or reserved addresses are refused
  otherwise, when set and again when connecting (see ``byollm.netguard``); default none. A VPC interface
  endpoint resolves to the VPC's private addresses: allow the VPC's CIDR. The demo and tests allow loopback.
- ``BYOLLM_ALLOW_INSECURE_CREDENTIALS``: ``1`` accepts delegated AWS credentials over plain HTTP from
  non-loopback clients (a TLS-terminating proxy in front of byollm); off by default.
- ``BYOLLM_ANTHROPIC_BASE_URL``, ``BYOLLM_OPENAI_BASE_URL``, ``BYOLLM_GOOGLE_BASE_URL``: the direct
  providers' API base URLs (the demo points them at the simulator).
- ``BYOLLM_STS_ENDPOINT_URL``: the STS endpoint used to check which account delegated credentials belong
  to; default the regional AWS endpoint of the team's region.
- ``BYOLLM_REQUEST_DEADLINE_SECONDS`` (default 600) bounds a whole inference request, every attempt
  included; ``BYOLLM_ATTEMPT_TIMEOUT_SECONDS`` (default 300) bounds one attempt (for a stream: the wait
  for its first content), so a hanging upstream fails over instead of holding the request.
- Cloud runs (``byollm.runs``): ``BYOLLM_RUN_WORKER_EMBEDDED`` (default ``1``: ``byollm serve`` also executes
  runs; set ``0`` on gateway replicas when separate ``byollm worker`` processes do), ``BYOLLM_RUN_WORKER_CONCURRENCY``
  (runs one process executes at once, default 4), ``BYOLLM_RUN_LEASE_SECONDS`` (a worker's claim on a run,
  renewed every third of it; default 30), ``BYOLLM_RUN_POLL_SECONDS`` (safety-net queue poll, default 5),
  ``BYOLLM_RUN_MAX_ATTEMPTS`` (executions of a run whose worker died, default 2), ``BYOLLM_RUN_MAX_TURNS``
  (model calls per run, default 20), ``BYOLLM_RUN_PLATFORM_CREDITS`` (platform credits per run, default 1),
  ``BYOLLM_RUN_COMPUTE_CREDITS_PER_SECOND`` (default 1), ``BYOLLM_RUN_TOOL_TIMEOUT_SECONDS`` (one tool call,
  default 30), ``BYOLLM_RUN_TOOL_OUTPUT_BYTES`` (tool output kept, default 16384), ``BYOLLM_RUN_USER_TOOLS``
  (comma-separated tools a run without a named agent may request; default none) and
  ``BYOLLM_RUN_WORKDIR`` (per-run working directories, created 0700; default ``<data dir>-runs``, a
  sibling of the data directory: never inside it).
- Run tools and their sandbox (``byollm.runs.tools``, ``byollm.runs.sandbox``): ``BYOLLM_RUN_TOOLS``
  (comma-separated tools that exist on this deployment at all, e.g. ``shell``; default none: tools are off
  until the operator lists them), ``BYOLLM_BWRAP`` (the bubblewrap executable; default ``bwrap`` on
  ``PATH``; without it tools refuse to run), ``BYOLLM_RUN_EGRESS_HOSTS`` (comma-separated ``host`` or
  ``host:port`` a tool may reach through byollm's egress proxy; a bare host means ports 80 and 443; default
  none: no network at all), ``BYOLLM_RUN_TOOL_CPU_SECONDS`` (default 30),
  ``BYOLLM_RUN_TOOL_MEMORY_BYTES`` (address space, default 1 GiB), ``BYOLLM_RUN_TOOL_PROCESSES`` (default
  128), ``BYOLLM_RUN_TOOL_FILE_BYTES`` (largest file a tool may write, default 256 MiB),
  ``BYOLLM_RUN_WORKDIR_BYTES`` (a run's working directory quota, files counted at 4 KiB at least; default
  1 GiB) and
  ``BYOLLM_RUN_SANDBOX_UID`` (the unprivileged user tools run as when byollm itself runs as root; default
  65534).
- A new team's starting monthly allowances (an admin changes them on the Usage page or with
  ``byollm admin settings set``): ``BYOLLM_NEW_TEAM_AI_CREDITS`` (default 1000),
  ``BYOLLM_NEW_TEAM_PLATFORM_CREDITS`` (default 100, a hundred runs at the default price) and
  ``BYOLLM_NEW_TEAM_COMPUTE_CREDITS`` (default 3600, an hour of sandbox time at the default rate), so a new
  team's first run or direct-API request is not refused for an allowance nobody set.
- ``BYOLLM_FAILED_TOKEN_LIMIT`` (default 20): failed token attempts one client address may make per minute
  before it must wait (0 turns the limit off); ``BYOLLM_MAX_BODY_BYTES`` (default 32 MiB): the largest
  request body byollm reads.
- The HTTP server's limits (``byollm serve``; see ``byollm.api.server_limits``): ``BYOLLM_MAX_HEADER_BYTES``
  (request line and headers together, default 65536; more is answered 431), ``BYOLLM_MAX_HEADERS`` (default
  100; more is 431), ``BYOLLM_HEADER_TIMEOUT_SECONDS`` (a request's headers must arrive within it, default 10;
  a connection that sends nothing is closed after it too), ``BYOLLM_BODY_TIMEOUT_SECONDS`` (a request's body
  must arrive within it, default 60), ``BYOLLM_KEEP_ALIVE_SECONDS`` (an idle kept-alive connection is closed
  after it, default 75), ``BYOLLM_MAX_CONNECTIONS`` (open connections per process; requests beyond are
  answered 503, default 1000).
- ``BYOLLM_TRUSTED_PROXIES``: comma-separated addresses or CIDRs of reverse proxies whose
  ``X-Forwarded-For``/``X-Forwarded-Proto`` name the real client; default none: the client is always the TCP
  peer (the failed-token limiter counts per peer), since a header any client can send must not choose it.
- ``BYOLLM_PANEL_SESSIONS_PER_ADDRESS`` (default 32): signed-in panel sessions one client address may hold;
  a further sign-in from it ends its oldest (raise it when many admins share one address behind NAT).
- ``BYOLLM_METRICS_TOKEN``: when set, ``/metrics`` answers only a scrape sending ``Authorization: Bearer`` with
  this value; default unset: ``/metrics`` is public, which is safe because its labels take only closed sets of
  identifiers (``gateway.metrics``), never request input.
- ``BYOLLM_AUTH_CACHE_SECONDS``: how long an authenticated token is remembered in memory (default 10); a
  revocation reaches other replicas within this time.

OIDC issuer and web identity (cloud runs; see ``byollm.oidc``):

- ``BYOLLM_OIDC_ISSUER_URL``: the issuer URL put in tokens' ``iss`` (default ``BYOLLM_PUBLIC_URL``). AWS
  must reach ``<issuer>/.well-known/openid-configuration`` over public HTTPS.
- ``BYOLLM_OIDC_AUDIENCE``: the tokens' ``aud`` (default ``sts.amazonaws.com``).
- ``BYOLLM_OIDC_TOKEN_LIFETIME_SECONDS``: how long a minted token is valid (default 300; tokens are used once,
  at once, by STS).
- ``BYOLLM_OIDC_KEY_ROTATION_SECONDS``: automatic signing-key rotation interval (default 30 days; 0 turns
  automatic rotation off, ``byollm keys rotate`` still works).
- ``BYOLLM_OIDC_KEY_PUBLISH_DELAY_SECONDS``: how long a new key is published before it signs (default 900,
  more than the JWKS ``max-age`` plus the replicas' key cache, so every cached JWKS knows it first).
- ``BYOLLM_OIDC_JWKS_MAX_AGE_SECONDS``: ``Cache-Control: max-age`` of the discovery document and JWKS
  (default 300).
- ``BYOLLM_OIDC_KEY_CACHE_SECONDS``: how long a replica reuses the key list it read from the database
  (default 5).
- ``BYOLLM_WEB_IDENTITY_SESSION_SECONDS``: ``DurationSeconds`` asked of STS (default 3600, the smallest
  ``MaxSessionDuration`` a role can have; clamped to 900..43200).
- ``BYOLLM_STS_CONNECT_TIMEOUT_SECONDS`` / ``BYOLLM_STS_READ_TIMEOUT_SECONDS``: STS call timeouts (3 / 10).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from byollm.netguard import ALLOW_SETTING, parse_networks

__all__ = ["Settings", "default_data_dir", "normalize_database_url"]


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("BYOLLM_DATA_DIR"):
        return Path(env["BYOLLM_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "byollm"


def normalize_database_url(url: str) -> str:
    """Map sync-style URLs to the async drivers SQLAlchemy needs (``postgresql://`` -> asyncpg)."""
    for prefix, replacement in (
        ("postgresql+asyncpg://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix):]
    raise ValueError(f"unsupported database URL scheme in {url.split('://', 1)[0]!r}; use sqlite or postgresql")


def _networks(value: str | None) -> tuple[str, ...]:
    """The allow-list in canonical form; a malformed entry stops the start naming the variable."""
    return tuple(str(n) for n in parse_networks((value or "").split(","), source=ALLOW_SETTING))


def _names(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, trimmed, empty entries dropped."""
    return tuple(x.strip() for x in (value or "").split(",") if x.strip())


def _networks_named(value: str | None, name: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs, canonical; a malformed entry stops the start naming ``name``."""
    return tuple(str(n) for n in parse_networks((value or "").split(","), source=name))


def _secret_file(variable: str, path: str | None) -> str | None:
    """The stripped text of the file ``variable`` names, or None when unset; a clear error when unreadable."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{variable} names {path}, which cannot be read ({exc.strerror or type(exc).__name__})"
                         ) from None
    if not text:
        raise ValueError(f"{variable} names {path}, which is empty")
    return text


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str  # always an async driver URL
    kek: str | None = None  # from the environment; None means the data-directory file
    kek_previous: tuple[str, ...] = ()
    catalog_file: Path | None = None
    public_url: str | None = None
    allow_http_endpoints: bool = False
    allowed_internal_networks: tuple[str, ...] = ()  # CIDRs an admin-set endpoint may resolve into
    auth_cache_seconds: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 75.0
    max_connections: int = 1000
    trusted_proxies: tuple[str, ...] = ()
    metrics_token: str | None = field(default=None, repr=False)
    panel_sessions_per_address: int = 32
    allow_insecure_credentials: bool = False
    anthropic_base_url: str = "https://api.anthropic.com"
    openai_base_url: str = "https://api.openai.com/v1"
    google_base_url: str = "https://generativelanguage.googleapis.com"
    sts_endpoint_url: str | None = None
    request_deadline_s: float = 600.0
    failed_token_limit: int = 20
    max_body_bytes: int = 32 * 1024 * 1024
    attempt_timeout_s: float = 300.0
    run_worker_embedded: bool = True
    run_worker_concurrency: int = 4
    run_lease_s: float = 30.0
    run_poll_s: float = 5.0
    run_max_attempts: int = 2
    run_max_turns: int = 20
    run_platform_credits: int = 1
    new_team_ai_credits: int = 1000
    new_team_platform_credits: int = 100
    new_team_compute_credits: int = 3600
    run_compute_credits_per_second: Decimal = Decimal(1)
    run_tool_timeout_s: float = 30.0
    run_tool_output_bytes: int = 16384
    run_user_tools: tuple[str, ...] = ()
    run_workdir: Path | None = None
    run_tools: tuple[str, ...] = ()
    run_bwrap: str = ""  # empty: ``bwrap`` on PATH
    run_egress_hosts: tuple[str, ...] = ()
    run_tool_cpu_s: int = 30
    run_tool_memory_bytes: int = 1 << 30
    run_tool_processes: int = 128
    run_tool_file_bytes: int = 256 << 20
    run_workdir_bytes: int = 1 << 30
    run_sandbox_uid: int = 65534
    oidc_issuer_url: str | None = None  # None: ``public_url``
    oidc_audience: str = "sts.amazonaws.com"
    oidc_token_lifetime_seconds: int = 300
    oidc_key_rotation_seconds: float = 30 * 86400.0
    oidc_key_publish_delay_seconds: float = 900.0
    oidc_jwks_max_age_seconds: int = 300
    oidc_key_cache_seconds: float = 5.0
    web_identity_session_seconds: int = 3600
    sts_connect_timeout_seconds: float = 3.0
    sts_read_timeout_seconds: float = 10.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = default_data_dir(env)
        url = env.get("BYOLLM_DATABASE_URL") or f"sqlite:///{data_dir / 'byollm.sqlite3'}"
        previous = tuple(k for k in (env.get("BYOLLM_KEK_PREVIOUS") or "").split(",") if k.strip())
        catalog = env.get("BYOLLM_CATALOG_FILE")
        return cls(
            data_dir=data_dir,
            database_url=normalize_database_url(url),
            kek=env.get("BYOLLM_KEK") or _secret_file("BYOLLM_KEK_FILE", env.get("BYOLLM_KEK_FILE")),
            kek_previous=previous,
            catalog_file=Path(catalog) if catalog else None,
            public_url=env.get("BYOLLM_PUBLIC_URL") or None,
            allow_http_endpoints=_flag(env.get("BYOLLM_ALLOW_HTTP_ENDPOINTS")),
            allowed_internal_networks=_networks(env.get(ALLOW_SETTING)),
            auth_cache_seconds=float(env.get("BYOLLM_AUTH_CACHE_SECONDS") or 10.0),
            max_header_bytes=int(env.get("BYOLLM_MAX_HEADER_BYTES") or 64 * 1024),
            max_headers=int(env.get("BYOLLM_MAX_HEADERS") or 100),
            header_timeout_s=float(env.get("BYOLLM_HEADER_TIMEOUT_SECONDS") or 10.0),
            body_timeout_s=float(env.get("BYOLLM_BODY_TIMEOUT_SECONDS") or 60.0),
            keep_alive_s=float(env.get("BYOLLM_KEEP_ALIVE_SECONDS") or 75.0),
            max_connections=int(env.get("BYOLLM_MAX_CONNECTIONS") or 1000),
            metrics_token=env.get("BYOLLM_METRICS_TOKEN") or None,
            panel_sessions_per_address=int(env.get("BYOLLM_PANEL_SESSIONS_PER_ADDRESS") or 32),
            trusted_proxies=_networks_named(env.get("BYOLLM_TRUSTED_PROXIES"), "BYOLLM_TRUSTED_PROXIES"),
            allow_insecure_credentials=_flag(env.get("BYOLLM_ALLOW_INSECURE_CREDENTIALS")),
            anthropic_base_url=env.get("BYOLLM_ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            openai_base_url=env.get("BYOLLM_OPENAI_BASE_URL") or "https://api.openai.com/v1",
            google_base_url=env.get("BYOLLM_GOOGLE_BASE_URL") or "https://generativelanguage.googleapis.com",
            sts_endpoint_url=env.get("BYOLLM_STS_ENDPOINT_URL") or None,
            request_deadline_s=float(env.get("BYOLLM_REQUEST_DEADLINE_SECONDS") or 600.0),
            failed_token_limit=int(env.get("BYOLLM_FAILED_TOKEN_LIMIT") or 20),
            max_body_bytes=int(env.get("BYOLLM_MAX_BODY_BYTES") or 32 * 1024 * 1024),
            attempt_timeout_s=float(env.get("BYOLLM_ATTEMPT_TIMEOUT_SECONDS") or 300.0),
            run_worker_embedded=_flag(env.get("BYOLLM_RUN_WORKER_EMBEDDED") or "1"),
            run_worker_concurrency=int(env.get("BYOLLM_RUN_WORKER_CONCURRENCY") or 4),
            run_lease_s=float(env.get("BYOLLM_RUN_LEASE_SECONDS") or 30.0),
            run_poll_s=float(env.get("BYOLLM_RUN_POLL_SECONDS") or 5.0),
            run_max_attempts=int(env.get("BYOLLM_RUN_MAX_ATTEMPTS") or 2),
            run_max_turns=int(env.get("BYOLLM_RUN_MAX_TURNS") or 20),
            run_platform_credits=int(env.get("BYOLLM_RUN_PLATFORM_CREDITS") or 1),
            new_team_ai_credits=int(env.get("BYOLLM_NEW_TEAM_AI_CREDITS") or 1000),
            new_team_platform_credits=int(env.get("BYOLLM_NEW_TEAM_PLATFORM_CREDITS") or 100),
            new_team_compute_credits=int(env.get("BYOLLM_NEW_TEAM_COMPUTE_CREDITS") or 3600),
            run_compute_credits_per_second=Decimal(env.get("BYOLLM_RUN_COMPUTE_CREDITS_PER_SECOND") or 1),
            run_tool_timeout_s=float(env.get("BYOLLM_RUN_TOOL_TIMEOUT_SECONDS") or 30.0),
            run_tool_output_bytes=int(env.get("BYOLLM_RUN_TOOL_OUTPUT_BYTES") or 16384),
            run_user_tools=_names(env.get("BYOLLM_RUN_USER_TOOLS")),
            run_workdir=Path(env["BYOLLM_RUN_WORKDIR"]) if env.get("BYOLLM_RUN_WORKDIR") else None,
            run_tools=_names(env.get("BYOLLM_RUN_TOOLS")),
            run_bwrap=(env.get("BYOLLM_BWRAP") or "").strip(),
            run_egress_hosts=_names(env.get("BYOLLM_RUN_EGRESS_HOSTS")),
            run_tool_cpu_s=int(env.get("BYOLLM_RUN_TOOL_CPU_SECONDS") or 30),
            run_tool_memory_bytes=int(env.get("BYOLLM_RUN_TOOL_MEMORY_BYTES") or 1 << 30),
            run_tool_processes=int(env.get("BYOLLM_RUN_TOOL_PROCESSES") or 128),
            run_tool_file_bytes=int(env.get("BYOLLM_RUN_TOOL_FILE_BYTES") or 256 << 20),
            run_workdir_bytes=int(env.get("BYOLLM_RUN_WORKDIR_BYTES") or 1 << 30),
            run_sandbox_uid=int(env.get("BYOLLM_RUN_SANDBOX_UID") or 65534),
            oidc_issuer_url=env.get("BYOLLM_OIDC_ISSUER_URL") or None,
            oidc_audience=env.get("BYOLLM_OIDC_AUDIENCE") or "sts.amazonaws.com",
            oidc_token_lifetime_seconds=int(env.get("BYOLLM_OIDC_TOKEN_LIFETIME_SECONDS") or 300),
            oidc_key_rotation_seconds=float(env.get("BYOLLM_OIDC_KEY_ROTATION_SECONDS") or 30 * 86400.0),
            oidc_key_publish_delay_seconds=float(env.get("BYOLLM_OIDC_KEY_PUBLISH_DELAY_SECONDS") or 900.0),
            oidc_jwks_max_age_seconds=int(env.get("BYOLLM_OIDC_JWKS_MAX_AGE_SECONDS") or 300),
            oidc_key_cache_seconds=float(env.get("BYOLLM_OIDC_KEY_CACHE_SECONDS") or 5.0),
            web_identity_session_seconds=int(env.get("BYOLLM_WEB_IDENTITY_SESSION_SECONDS") or 3600),
            sts_connect_timeout_seconds=float(env.get("BYOLLM_STS_CONNECT_TIMEOUT_SECONDS") or 3.0),
            sts_read_timeout_seconds=float(env.get("BYOLLM_STS_READ_TIMEOUT_SECONDS") or 10.0),
        )

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: object) -> Settings:
        """Embedded defaults rooted at ``data_dir`` (tests and the demo)."""
        base = cls(data_dir=data_dir, database_url=normalize_database_url(f"sqlite:///{data_dir / 'byollm.sqlite3'}"))
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def oidc_issuer(self) -> str | None:
        """The issuer URL tokens carry (no trailing slash), or None when neither setting names one."""
        url = self.oidc_issuer_url or self.public_url
        return url.rstrip("/") if url else None

    @property
    def run_workdir_root(self) -> Path:
        """Where runs' working directories live: outside the data directory, so no relative path from a
        run's directory leads to the database or the key file."""
        return self.run_workdir or self.data_dir.parent / f"{self.data_dir.name}-runs"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
