"""``byollm iam ...``: print what the customer's cloud admin must create for a team, via the admin API.

``trust-policy`` and ``permissions-policy`` (team admins) and ``oidc-provider`` (any signed-in user) print
the document in the chosen ``--format`` (``json``, ``terraform`` or ``cloudformation``) on stdout, so it
can be redirected into a file, and the notes on stderr. ``--json`` prints the whole API answer instead.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from byollm.cli.admin_client import AdminClient, api_session
from byollm.cli.admin_cmd import DEFAULT_URL, AsJson, Team, Token, Url
from byollm.iam.policies import PolicyForm

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

iam = typer.Typer(help="IAM setup for cloud runs: OIDC provider, role trust policy, permissions.",
                  no_args_is_help=True)


class Format(StrEnum):
    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="Named agent (UID or name) with its own role.")]


def register(app: typer.Typer) -> None:
    app.add_typer(iam, name="iam")


def _client(url: str, token: str) -> AbstractContextManager[AdminClient]:
    return api_session(url, token, err=err)


def _print(answer: Any, as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(answer, indent=2), markup=False)
        return
    out.print(answer["rendered"], markup=False)
    for note in answer.get("notes", []):
        err.print(f"[dim]note:[/] {note}", markup=True)


@iam.command("trust-policy")
def trust_policy(
    team: Team,
    agent: AgentOpt = None,
    fmt: FormatOpt = Format.JSON,
    strict_agent: Annotated[bool, typer.Option(
        "--strict-agent", help="Trust only the agent's own trigger (service_account sub), not user-started runs.",
    )] = False,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """The trust policy of the team's role (or an agent's override role), pinned to the team's UID."""
    params = {"format": fmt.value, "agent": agent, "agent_strict": "true" if strict_agent else None}
    with _client(url, token) as client:
        answer = client.get(f"/teams/{team}/iam/trust-policy", **params)
    _print(answer, as_json)


@iam.command("permissions-policy")
def permissions_policy(
    team: Team, agent: AgentOpt = None, fmt: FormatOpt = Format.JSON,
    form: Annotated[PolicyForm, typer.Option(
        "--form", help="least-privilege: exactly the enabled models' resources; wildcard: every model and profile.",
    )] = PolicyForm.LEAST_PRIVILEGE,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """The Bedrock permissions (InvokeModel, InvokeModelWithResponseStream, CountTokens) the team's role needs."""
    with _client(url, token) as client:
        answer = client.get(f"/teams/{team}/iam/permissions-policy", format=fmt.value, agent=agent,
                            form=form.value)
    _print(answer, as_json)


@iam.command("oidc-provider")
def oidc_provider(fmt: FormatOpt = Format.JSON, url: Url = DEFAULT_URL, token: Token = "",
                  as_json: AsJson = False) -> None:
    """The IAM OpenID Connect provider to create for byollm's issuer (host, audience, thumbprint note)."""
    with _client(url, token) as client:
        answer = client.get("/iam/oidc-provider", format=fmt.value)
    _print(answer, as_json)
