"""``byollm doctor``: check a setup and name every failure's fix.

Two sides:

- ``byollm doctor --local`` (the default without ``--team``): this machine, as a team member uses it:
  credentials, region, account, gateway and each Bedrock model (``byollm.client.doctor``);
- ``byollm doctor --team T [--agent A]`` (admins): the server runs every check that needs no AWS credentials
  of the admin (issuer, roles, models, test prompts through each role, throttling) through the doctor API,
  and this process reads IAM and the Bedrock control plane with the admin's OWN AWS credentials (boto3's
  default chain or ``--profile``; endpoint overrides such as ``AWS_ENDPOINT_URL_IAM`` are honoured): the
  OIDC provider, each role's trust policy (GetRole), its permissions (SimulatePrincipalPolicy), the account's
  models and invocation logging. Both halves are merged into one report. The admin's AWS credentials never
  leave this process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from byollm.cli.admin_cmd import DEFAULT_URL, Token, Url

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

Profile = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: the default chain).")]


class FixFormat(StrEnum):
    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"


_MARKS = {"pass": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]"}


def _load_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        err.print(f"[red]✗[/] cannot read {escape(str(path))}: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        err.print(f"[red]✗[/] {escape(str(path))} is not a JSON object")
        raise typer.Exit(2)
    return data


def _local(profile: str | None) -> None:
    """The member's side, exactly as before: ``byollm.client.doctor.run_doctor``."""
    from byollm.cli.client_cmd import _context
    from byollm.client.doctor import Check, Status, run_doctor

    marks = {Status.OK: "[green]✓[/]", Status.WARN: "[yellow]![/]", Status.FAIL: "[red]✗[/]",
             Status.SKIP: "[dim]-[/]"}

    def report(check: Check) -> None:
        out.print(f"{marks[check.status]} [bold]{escape(check.name)}[/]: {escape(check.detail)}")
        if check.code:
            out.print(f"    error class: {escape(check.code)}")
        if check.remediation and check.status != Status.OK:
            out.print(f"    fix: {escape(check.remediation)}")

    with _context(profile) as ctx:
        ok = run_doctor(ctx, report)
    raise typer.Exit(0 if ok else 1)


def _render(report: Any, fix_format: FixFormat | None) -> None:
    from byollm.doctor.report import Check

    checks: Sequence[Check] = report.checks
    out.print(f"[bold]byollm doctor[/] team {escape(report.team_uid)}"
              + (f", agent {escape(report.agent_uid)}" if report.agent_uid else ""))
    for scope, group in report.grouped():
        out.print(f"\n[bold underline]{escape(scope)}[/]")
        for check in group:
            out.print(f"{_MARKS[check.status]} [bold]{escape(check.title)}[/] [dim]({escape(check.id)})[/]:"
                      f" {escape(check.detail)}")
            if check.status in ("fail", "warn") and check.error_class is not None:
                out.print(f"    error class: {escape(check.error_class.code)}")
            if check.status in ("fail", "warn") and check.remediation:
                out.print(f"    fix: {escape(check.remediation)}")
            if check.status == "fail" and check.fixes:
                if fix_format is not None and fix_format.value in check.fixes:
                    out.print(f"    fixing document ({fix_format.value}):")
                    out.print(check.fixes[fix_format.value], markup=False)
                elif fix_format is None:
                    out.print(f"    [dim]fixing documents: --fix-format {' | '.join(check.fixes)}[/]")
    out.print(f"\ninvocation logging: {escape(report.invocation_logging)}")
    pending = [c.id for c in checks if c.needs_cli and c.status == "skip"]
    if pending:
        out.print(f"[dim]not run (need your AWS credentials): {escape(', '.join(pending))}[/]")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    out.print(f"[bold]{'all checks passed' if not failed else f'{failed} check(s) failed'}[/]"
              + (f", {warned} warning(s)" if warned else ""))


def _admin(team: str, agent: str | None, url: str, token: str, profile: str | None, aws: bool,
           trust: dict[str, Any] | None, permissions: dict[str, Any] | None, as_json: bool,
           fix_format: FixFormat | None) -> None:
    from byollm.cli.admin_client import AdminApiError, AdminClient
    from byollm.doctor.report import DoctorReport

    if not token:
        err.print("[red]No token.[/] Pass --token or set BYOLLM_TOKEN (a team admin's byollm token).")
        raise typer.Exit(2)
    body = {"agent": agent, "trust_policy": trust, "permissions_policy": permissions}
    try:
        with AdminClient(url, token, timeout=120.0) as client:
            answer = client.post(f"/teams/{team}/doctor", {k: v for k, v in body.items() if v is not None})
    except AdminApiError as exc:
        err.print(f"[red]Error:[/] {escape(exc.message)} [dim]({escape(exc.code)})[/]")
        if exc.remediation:
            err.print(escape(exc.remediation))
        raise typer.Exit(1) from None
    report = DoctorReport.from_dict(answer)
    if aws and report.inputs is not None:
        from byollm.doctor.aws import AwsReadError, BotoAwsReader
        from byollm.doctor.checks import run_aws_checks

        first = report.inputs.scopes[0].scope if report.inputs.scopes else ""
        pasted = ({f"{first}.trust_policy"} if trust else set()) | ({f"{first}.permissions"} if permissions else set())
        try:
            reader = BotoAwsReader(profile=profile, region=report.inputs.region)
            local, logging_state = run_aws_checks(report.inputs, reader)
        except AwsReadError as exc:
            err.print(f"[yellow]![/] could not read AWS with your credentials: {escape(str(exc))}")
        else:
            report = report.merged([c for c in local if c.id not in pasted], logging_state)
    if as_json:
        out.print(json.dumps(report.to_dict(), indent=2), markup=False)
    else:
        _render(report, fix_format)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        local: Annotated[bool, typer.Option("--local", help="Check this machine (the default without --team).")]
        = False,
        team: Annotated[str | None, typer.Option("--team", "-t", help="Team UID: run the admin checks.")] = None,
        agent: Annotated[str | None, typer.Option("--agent", "-a", help="Focus on one named agent.")] = None,
        profile: Profile = None,
        aws: Annotated[bool, typer.Option("--aws/--no-aws", help="Read IAM and Bedrock with your AWS credentials.")]
        = True,
        trust_policy: Annotated[Path | None, typer.Option("--trust-policy", help="Evaluate this trust policy JSON.")]
        = None,
        permissions_policy: Annotated[Path | None, typer.Option(
            "--permissions-policy", help="Evaluate this permissions policy JSON.")] = None,
        fix_format: Annotated[FixFormat | None, typer.Option("--fix-format", help="Print fixing documents.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        url: Url = DEFAULT_URL,
        token: Token = "",
    ) -> None:
        """Check a setup and name every failure's fix: this machine (--local) or a team's Bedrock (--team)."""
        if team is None or local:
            _local(profile)
            return
        _admin(team, agent, url, token, profile, aws, _load_json(trust_policy), _load_json(permissions_policy),
               as_json, fix_format)
