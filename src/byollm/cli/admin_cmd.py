"""``byollm admin ...``: the admin API from the terminal, one subcommand per endpoint.

Every command except ``bootstrap`` calls the admin API with the caller's token (``--token`` or
``BYOLLM_TOKEN``) at ``--url`` (``BYOLLM_URL``), prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from byollm.cli.admin_client import AdminClient, api_session

__all__ = ["register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

admin = typer.Typer(help="Administer teams, members, agents, tokens and model policy.", no_args_is_help=True)
teams = typer.Typer(help="Teams.", no_args_is_help=True)
members = typer.Typer(help="Members and roles.", no_args_is_help=True)
agents = typer.Typer(help="Named agents.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens.", no_args_is_help=True)
policy = typer.Typer(help="Model policy: routes, direct-API switch, fallback order.", no_args_is_help=True)
settings_app = typer.Typer(help="Team settings.", no_args_is_help=True)
bedrock = typer.Typer(help="Bedrock host configuration.", no_args_is_help=True)
for _sub, _name in ((teams, "teams"), (members, "members"), (agents, "agents"), (tokens, "tokens"),
                    (policy, "policy"), (settings_app, "settings"), (bedrock, "bedrock")):
    admin.add_typer(_sub, name=_name)

Url = Annotated[str, typer.Option("--url", envvar="BYOLLM_URL", help="byollm server URL.")]
Token = Annotated[str, typer.Option("--token", envvar="BYOLLM_TOKEN", help="Your byollm token.",
                                    show_default=False)]
Team = Annotated[str, typer.Option("--team", "-t", envvar="BYOLLM_TEAM", help="Team UID.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_URL = "http://127.0.0.1:8080"


def register(app: typer.Typer) -> None:
    app.add_typer(admin, name="admin")


def _client(url: str, token: str) -> AbstractContextManager[AdminClient]:
    return api_session(url, token, err=err)


def _show(data: Any, as_json: bool, columns: list[str] | None = None, title: str | None = None) -> None:
    if as_json or columns is None:
        out.print_json(json.dumps(data, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


def _call(url: str, token: str, fn: Callable[[AdminClient], Any]) -> Any:
    with _client(url, token) as client:
        return fn(client)


# --- bootstrap -------------------------------------------------------------------------------------------


@admin.command("bootstrap")
def bootstrap(
    email: Annotated[str, typer.Option(help="The operator's email.")],
    team: Annotated[str | None, typer.Option("--team", help="Also create a first team with this name.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create the first (operator) user on this server's database and print its token once."""
    import asyncio

    from byollm.control.bootstrap import bootstrap_operator
    from byollm.settings import Settings

    try:
        result = asyncio.run(bootstrap_operator(Settings.from_env(), email=email, display_name=name, team_name=team))
    except Exception as exc:  # the store and taxonomy errors carry safe, actionable messages
        err.print(f"[red]Bootstrap failed:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"Operator [bold]{email}[/] created (user {result.user_uid}).")
    if result.team_uid:
        out.print(f"Team [bold]{team}[/] created: {result.team_uid} (admin path /admin/{result.team_uid}/models)")
    out.print("Token (shown once; store it now, e.g. `export BYOLLM_TOKEN=...`):")
    out.print(result.token, soft_wrap=True)


# --- identity and teams ----------------------------------------------------------------------------------


@admin.command("whoami")
def whoami(url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Show who the token belongs to and its teams."""
    data = _call(url, token, lambda c: c.get("/me"))
    if as_json:
        _show(data, True)
        return
    out.print(f"{data['kind']} {data['principal_uid']}{' (operator)' if data['is_operator'] else ''}")
    _show(data["teams"], False, ["uid", "name", "your_role"], title="Teams")


@teams.command("list")
def teams_list(url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Teams you belong to."""
    _show(_call(url, token, lambda c: c.get("/teams")), as_json, ["uid", "name", "your_role", "admin_path"])


@teams.command("create")
def teams_create(name: str, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Create a team (operator); you become its first admin."""
    _show(_call(url, token, lambda c: c.post("/teams", {"name": name})), as_json, ["uid", "name", "admin_path"])


# --- members ---------------------------------------------------------------------------------------------


@members.command("list")
def members_list(team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/members")), as_json,
          ["user_uid", "email", "display_name", "role"])


@members.command("invite")
def members_invite(
    team: Team, email: str,
    role: Annotated[str, typer.Option(help="admin or member")] = "member",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Invite someone; a person new to byollm gets their first token, printed once: hand it to them."""
    body = {"email": email, "role": role, "display_name": name}
    invited = _call(url, token, lambda c: c.post(f"/teams/{team}/members", body))
    _show(invited, as_json, ["user_uid", "email", "role"])
    if not as_json and invited.get("first_token"):
        _print_issued(invited["first_token"])


@members.command("set-role")
def members_set_role(team: Team, user_uid: str, role: str, url: Url = DEFAULT_URL, token: Token = "",
                     as_json: AsJson = False) -> None:
    _show(_call(url, token, lambda c: c.patch(f"/teams/{team}/members/{user_uid}", {"role": role})), as_json,
          ["user_uid", "email", "role"])


@members.command("remove")
def members_remove(team: Team, user_uid: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    _call(url, token, lambda c: c.delete(f"/teams/{team}/members/{user_uid}"))
    out.print(f"Removed {user_uid}; their tokens for this team are revoked.")


# --- agents ----------------------------------------------------------------------------------------------

_AGENT_COLUMNS = ["uid", "name", "role_arn_override", "default_model", "tools"]


@agents.command("list")
def agents_list(team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/agents")), as_json, _AGENT_COLUMNS)


@agents.command("create")
def agents_create(
    team: Team, name: str,
    role_arn: Annotated[str | None, typer.Option(help="Role ARN override (else the team's role).")] = None,
    model: Annotated[str | None, typer.Option(help="Default model.")] = None,
    tool: Annotated[list[str] | None, typer.Option(help="Enable a tool (repeatable).")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    body = {"name": name, "role_arn_override": role_arn, "default_model": model, "tools": tool or []}
    _show(_call(url, token, lambda c: c.post(f"/teams/{team}/agents", body)), as_json, _AGENT_COLUMNS)


@agents.command("update")
def agents_update(
    team: Team, agent_uid: str,
    role_arn: Annotated[str | None, typer.Option(help="Role ARN override; 'team' to use the team's role.")] = None,
    model: Annotated[str | None, typer.Option(help="Default model.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    body: dict[str, Any] = {}
    if role_arn is not None:
        body["role_arn_override"] = None if role_arn == "team" else role_arn
    if model is not None:
        body["default_model"] = model
    _show(_call(url, token, lambda c: c.patch(f"/teams/{team}/agents/{agent_uid}", body)), as_json, _AGENT_COLUMNS)


@agents.command("delete")
def agents_delete(team: Team, agent_uid: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    _call(url, token, lambda c: c.delete(f"/teams/{team}/agents/{agent_uid}"))
    out.print(f"Deleted agent {agent_uid}; its tokens are revoked.")


# --- tokens ----------------------------------------------------------------------------------------------

_TOKEN_COLUMNS = ["uid", "name", "principal_type", "principal_uid", "display_prefix", "expires_at",
                  "last_used_at", "revoked_at"]


@tokens.command("list")
def tokens_list(team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/tokens")), as_json, _TOKEN_COLUMNS)


@tokens.command("issue")
def tokens_issue(
    team: Team, name: str,
    user: Annotated[str | None, typer.Option(
        help="Issue for this user (the operator only; members issue their own).")] = None,
    agent: Annotated[str | None, typer.Option(help="Issue for this named agent (admins).")] = None,
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Issue a token; its value is printed once."""
    body = {"name": name, "user_uid": user, "agent_uid": agent, "expires_in_days": days}
    issued = _call(url, token, lambda c: c.post(f"/teams/{team}/tokens", body))
    if as_json:
        _show(issued, True)
        return
    _print_issued(issued)


def _print_issued(issued: dict[str, Any]) -> None:
    details = issued["details"]
    out.print(f"Token {details['uid']} for {details['principal_type']} {details['principal_uid']}"
              f"{' expires ' + str(details['expires_at']) if details['expires_at'] else ''}. Shown once:")
    out.print(issued["token"], soft_wrap=True)


@tokens.command("revoke")
def tokens_revoke(team: Team, token_uid: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    _call(url, token, lambda c: c.delete(f"/teams/{team}/tokens/{token_uid}"))
    out.print(f"Revoked {token_uid}.")


# --- policy, settings, host config ----------------------------------------------------------------------


def _print_policy(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _show(data, True)  # the warnings are in the JSON's "warnings"
        return
    out.print(f"Team {data['team_uid']}  region {data['region']}  policy v{data['policy_version']}")
    out.print(f"Direct API: {'DISABLED for every model' if data['direct_api_disabled'] else 'per model'};"
              f" Auto: {'allowed' if data['auto_allowed'] else 'off'};"
              f" fallback order: {', '.join(data['fallback_order']) or '(none)'}")
    table = Table(title="Models")
    table.add_column("model", no_wrap=True)
    table.add_column("Bedrock")
    table.add_column("direct API", no_wrap=True)
    for m in data["models"]:
        if m["default_bedrock_id"] is None and not m["bedrock_available_in_region"]:
            bedrock_cell = "[dim]not offered here[/]"
        elif m["bedrock"]:
            bedrock_cell = f"on: {m['inference_profile'] or m['default_bedrock_id']}"
        else:
            bedrock_cell = "off"
        direct_on = m["direct"] and not data["direct_api_disabled"]
        table.add_row(m["model"], bedrock_cell, f"{'on' if direct_on else 'off'} ({m['direct_provider']})")
    out.print(table)
    aliases = data.get("aliases") or []
    out.print("Aliases (first match wins): "
              + ("; ".join(f"{a['pattern']} -> {a['target']}" for a in aliases) if aliases else "(none)")
              + f"; Claude family mapping: {'on' if data.get('claude_family_mapping', True) else 'off'}")
    _print_warnings(data)


def _print_warnings(data: dict[str, Any]) -> None:
    """A save's warnings (models the validated permissions policy does not cover), on stderr."""
    for warning in data.get("warnings") or []:
        err.print(f"[yellow]warning:[/] {escape(str(warning))}", soft_wrap=True)


@policy.command("show")
def policy_show(team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    _print_policy(_call(url, token, lambda c: c.get(f"/teams/{team}/policy")), as_json)


@policy.command("set-model")
def policy_set_model(
    team: Team, model: str,
    bedrock_on: Annotated[bool, typer.Option("--bedrock/--no-bedrock", help="Route through Bedrock.")] = False,
    direct_on: Annotated[bool, typer.Option("--direct/--no-direct", help="Allow the direct provider API.")] = False,
    profile: Annotated[str | None, typer.Option(help="Inference profile id or application-profile ARN.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Set one model's routes (flags not given are off)."""
    body = {"models": {model: {"bedrock": bedrock_on, "direct": direct_on, "inference_profile": profile}}}
    _print_policy(_call(url, token, lambda c: c.patch(f"/teams/{team}/policy", body)), as_json)


@policy.command("direct-api")
def policy_direct_api(
    team: Team, state: Annotated[str, typer.Argument(help="'off' disables every direct-API model (and BYOK).")],
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    if state not in ("on", "off"):
        err.print("State must be 'on' or 'off'.")
        raise typer.Exit(2)
    body = {"direct_api_disabled": state == "off"}
    _print_policy(_call(url, token, lambda c: c.patch(f"/teams/{team}/policy", body)), as_json)


@policy.command("fallback")
def policy_fallback(team: Team, models: list[str], url: Url = DEFAULT_URL, token: Token = "",
                    as_json: AsJson = False) -> None:
    """Set the fallback order (models tried after the requested one)."""
    body = {"fallback_order": models}
    _print_policy(_call(url, token, lambda c: c.patch(f"/teams/{team}/policy", body)), as_json)


def _aliases(url: str, token: str, team: str) -> list[dict[str, str]]:
    current = _call(url, token, lambda c: c.get(f"/teams/{team}/policy"))
    return [{"pattern": a["pattern"], "target": a["target"]} for a in current.get("aliases") or []]


@policy.command("alias-add")
def policy_alias_add(
    team: Team,
    pattern: Annotated[str, typer.Argument(help="Requested names to match; * and ? are wildcards (claude-opus-*).")],
    target: Annotated[str, typer.Argument(help="The model that serves them (a catalog id or alias).")],
    position: Annotated[int | None, typer.Option(help="Where in the list (0 = first); default: last.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Serve requests for PATTERN as TARGET (replacing an alias with the same pattern)."""
    aliases = [a for a in _aliases(url, token, team) if a["pattern"].lower() != pattern.lower()]
    entry = {"pattern": pattern, "target": target}
    aliases.insert(len(aliases) if position is None else max(0, position), entry)
    body = {"aliases": aliases}
    _print_policy(_call(url, token, lambda c: c.patch(f"/teams/{team}/policy", body)), as_json)


@policy.command("alias-remove")
def policy_alias_remove(team: Team, pattern: str, url: Url = DEFAULT_URL, token: Token = "",
                        as_json: AsJson = False) -> None:
    """Remove the alias with this pattern."""
    current = _aliases(url, token, team)
    aliases = [a for a in current if a["pattern"].lower() != pattern.lower()]
    if len(aliases) == len(current):
        err.print(f"No alias with pattern {pattern!r}.")
        raise typer.Exit(1)
    body = {"aliases": aliases}
    _print_policy(_call(url, token, lambda c: c.patch(f"/teams/{team}/policy", body)), as_json)


@settings_app.command("show")
def settings_show(team: Team, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Print the team's settings as JSON."""
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/settings")), True)


@settings_app.command("set")
def settings_set(
    team: Team,
    pairs: Annotated[list[str], typer.Argument(help="key=value, e.g. byok_allowed=true monthly_ai_credits=5000")],
    url: Url = DEFAULT_URL, token: Token = "",
) -> None:
    """Change settings; prints the result as JSON."""
    body: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            err.print(f"Expected key=value, got {pair!r}.")
            raise typer.Exit(2)
        body[key] = _parse_value(key, raw)
    _show(_call(url, token, lambda c: c.patch(f"/teams/{team}/settings", body)), True)


def _parse_value(key: str, raw: str) -> Any:
    if key == "allowed_aws_accounts":
        return [a for a in raw.split(",") if a]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() in ("null", "none", ""):
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


@bedrock.command("show")
def bedrock_show(team: Team, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/bedrock")), as_json, ["region", "endpoint_url", "role_arn"])


@bedrock.command("set")
def bedrock_set(
    team: Team,
    region: Annotated[str | None, typer.Option(help="AWS region, e.g. us-east-1.")] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="VPC/FIPS endpoint URL; 'default' to clear.")] = None,
    role_arn: Annotated[str | None, typer.Option(help="Team-wide IAM role for cloud runs; 'none' to clear.")] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    body: dict[str, Any] = {}
    if region is not None:
        body["region"] = region
    if endpoint_url is not None:
        body["endpoint_url"] = None if endpoint_url == "default" else endpoint_url
    if role_arn is not None:
        body["role_arn"] = None if role_arn == "none" else role_arn
    _show(_call(url, token, lambda c: c.patch(f"/teams/{team}/bedrock", body)), as_json,
          ["region", "endpoint_url", "role_arn"])


@admin.command("audit")
def audit(
    team: Team,
    limit: Annotated[int, typer.Option(help="How many entries.")] = 50,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Configuration changes, newest first."""
    _show(_call(url, token, lambda c: c.get(f"/teams/{team}/audit", limit=limit)), as_json,
          ["at", "actor_uid", "action", "target"])


@admin.command("requests")
def requests_list(
    team: Team,
    member: Annotated[str | None, typer.Option(help="A member's email or an agent's name (or a UID).")] = None,
    model: Annotated[str | None, typer.Option(help="Served or requested model.")] = None,
    route: Annotated[str | None, typer.Option(help="bedrock, anthropic, openai, google, or direct.")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, error, or fallback.")] = None,
    request_id: Annotated[str | None, typer.Option("--id", help="A response's x-request-id.")] = None,
    limit: Annotated[int, typer.Option(help="How many rows.")] = 50,
    offset: Annotated[int, typer.Option(help="Rows to skip (the next page).")] = 0,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Recent requests, newest first: who, model, route, attempts and why they failed, who paid, credits."""
    params = {"member": member, "model": model, "route": route, "outcome": outcome, "request_id": request_id,
              "limit": limit, "offset": offset}
    rows = _call(url, token, lambda c: c.get(f"/teams/{team}/requests",
                                             **{k: v for k, v in params.items() if v is not None}))
    if as_json:
        _show(rows, True)
        return
    _show([request_row(r) for r in rows], False,
          ["at", "request_id", "who", "model", "route", "attempts", "billing", "credits", "ms", "status"],
          title=f"Requests ({len(rows)}, from row {offset + 1})" if rows else "No matching requests")


def request_row(r: dict[str, Any]) -> dict[str, str]:
    """One request as table cells: names, the served model, each failed attempt with its reason."""
    failed = [f"{a['host']}: {a.get('reason') or a.get('error_code')}" for a in r["attempts"] if a.get("error_code")]
    served = r.get("served_model") or r["requested_model"]
    return {
        "at": str(r["started_at"])[:19].replace("T", " "),
        "request_id": r["request_id"],
        "who": r.get("principal_name") or r["principal_uid"],
        "model": served if served == r["requested_model"] else f"{r['requested_model']} -> {served}",
        "route": r.get("host") or "(none)",
        "attempts": f"{len(r['attempts'])}" + (f" ({'; '.join(failed)})" if failed else ""),
        "billing": r.get("billing") or "",
        "credits": r["credits"],
        "ms": f"{r['duration_ms']:.0f}",
        "status": f"{r['status']} {r.get('outcome', '')}" + (f" {r['error_code']}" if r.get("error_code") else ""),
    }


@admin.command("provider-key")
def provider_key(
    provider: Annotated[str, typer.Argument(help="anthropic, openai or google")],
    remove: Annotated[bool, typer.Option("--remove", help="Delete the stored key.")] = False,
    url: Url = DEFAULT_URL, token: Token = "",
) -> None:
    """Store the operator's API key for a direct provider (read from stdin or a hidden prompt; never shown)."""
    import sys

    if remove:
        value = None
    elif not sys.stdin.isatty():
        value = sys.stdin.read().strip()
    else:
        value = typer.prompt(f"{provider} API key", hide_input=True).strip()
    data = _call(url, token, lambda c: c.request("PUT", f"/operator/provider-keys/{provider}",
                                                 json={"api_key": value}))
    out.print(", ".join(f"{name}: {'configured' if ok else 'not configured'}" for name, ok in data.items()))
