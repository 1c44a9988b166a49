"""The admin panel's pages under ``/admin``: sign-in, the team picker, and each team's pages.

Every handler is thin: parse (``read_form`` also checks the CSRF token), one control-plane or runs-service
call, render or redirect. Who may do what is decided by the control service (``control.authz``); the panel
adds one rule of its own in ``web.admin_page``: team pages are for the team's admins only.

Pages of a team live under ``/admin/<team-uid>/...`` so the team UID a trust policy needs is in the
address bar (and in every page's header). POSTs redirect back (post/redirect/get) with a one-time message;
a ``ByollmError`` from the service is shown with its remediation. The one exception is issuing a token: its
value is rendered once, in the response to the POST that created it, and never stored by the panel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from byollm.api.auth import authenticate_request, services_of
from byollm.control.authz import PrincipalKind
from byollm.errors import ByollmError, ErrorClass
from byollm.panel import charts
from byollm.panel.sessions import SIGNIN_COOKIE, Flash
from byollm.panel.web import (
    AdminPage,
    Form,
    PanelRoute,
    admin_page,
    panel_state,
    read_form,
    redirect,
    render,
    scrub,
    session_of,
    set_session_cookie,
    set_signin_cookie,
    signed_in,
    signin_form_csrf,
)
from byollm.policy.types import Host, Role
from byollm.runs.service import RunService

__all__ = ["router"]

router = APIRouter(prefix="/admin", route_class=PanelRoute, include_in_schema=False)

AdminDep = Annotated[AdminPage, Depends(admin_page)]
FormDep = Annotated[Form, Depends(read_form)]

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_PERIODS = (1, 7, 30, 90)
KEEPALIVE_S = 15.0


# --- plumbing ------------------------------------------------------------------------------------------------

async def _page(request: Request, ap: AdminPage, template: str, section: str, **context: Any) -> Response:
    team = await ap.services.control.get_team(ap.caller, ap.team_uid)
    return render(request, template, session=ap.session, team=team, section=section, **context)


async def _apply(ap: AdminPage, back: str, done: str, action: Awaitable[object]) -> Response:
    """Run one service call for a form, then redirect back with its outcome as a one-time message (and any
    warnings the result carries, such as a model the validated permissions policy does not cover)."""
    try:
        result = await action
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
    else:
        ap.session.flash("ok", done)
        for warning in getattr(result, "warnings", None) or ():
            ap.session.flash("warn", scrub(str(warning)))
    return redirect(f"/admin/{ap.team_uid}/{back}")


def _runs(ap: AdminPage) -> RunService:
    if ap.services.runs is None:
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "cloud runs are not available in this byollm process")
    return ap.services.runs.service


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


# --- static files, sign-in, team picker ----------------------------------------------------------------------

@router.get("/_static/{name}")
async def static(name: str) -> Response:
    """The panel's CSS and JS, from the package (no build step; CSP allows scripts from here only)."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if suffix not in _STATIC_TYPES or "/" in name or name.startswith("."):
        raise ByollmError(ErrorClass.NOT_FOUND, "no such file")
    try:
        data = resources.files("byollm.panel").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ByollmError(ErrorClass.NOT_FOUND, "no such file") from None
    return Response(data, media_type=_STATIC_TYPES[suffix])


@router.get("")
async def home(request: Request) -> Response:
    """Signed in: the teams this admin can manage. Otherwise: the sign-in form, whose CSRF token is bound to
    a cookie rather than to a session (no session exists before sign-in; ``panel.sessions``)."""
    session = session_of(request)
    if session is None or not session.signed_in:
        new_nonce: list[str] = []
        response = render(request, "signin.html", csrf=signin_form_csrf(request, new_nonce))
        if new_nonce:
            set_signin_cookie(request, response, new_nonce[0])
        return response
    caller, session = await signed_in(request)
    teams = await services_of(request).control.list_teams(caller)
    return render(request, "teams.html", session=session, teams=teams)


@router.post("/sign-in")
async def sign_in(request: Request, form: FormDep) -> Response:
    """Exchange an admin's byollm token for a session; the token is never echoed back."""
    state = panel_state(request)
    old = session_of(request)  # None for a visitor: read_form checked the sign-in form's token
    try:
        caller = await authenticate_request(request, form.get("token").strip())
        if caller.kind is not PrincipalKind.USER:
            raise ByollmError(ErrorClass.FORBIDDEN, "agent tokens cannot sign in to the admin panel")
    except ByollmError as exc:
        flash = Flash("error", "That token was not accepted." if exc.error_class is ErrorClass.UNAUTHENTICATED
                      else scrub(exc.detail), exc.error_class.remediation)
        return render(request, "signin.html", status_code=exc.status, session=old,
                      csrf=signin_form_csrf(request, []), flashes=[flash])
    session = state.sessions.sign_in(old, token=form.get("token").strip(), principal_uid=caller.principal_uid,
                                     address=request.client.host if request.client else None)
    response = redirect("/admin")
    set_session_cookie(request, response, session)
    response.delete_cookie(SIGNIN_COOKIE, path="/admin")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, form: FormDep) -> Response:
    session = session_of(request)
    if session is not None:
        panel_state(request).sessions.end(session.sid)
    response = redirect("/admin")
    response.delete_cookie("byollm_panel", path="/admin")
    return response


@router.get("/{team_uid}")
async def team_home(ap: AdminDep) -> Response:
    return redirect(f"/admin/{ap.team_uid}/models")


# --- models --------------------------------------------------------------------------------------------------

@router.get("/{team_uid}/models")
async def models_page(request: Request, ap: AdminDep) -> Response:
    control = ap.services.control
    bedrock = await control.get_bedrock(ap.caller, ap.team_uid)
    policy = await control.get_policy(ap.caller, ap.team_uid)
    settings = await control.get_settings(ap.caller, ap.team_uid)
    return await _page(request, ap, "models.html", "models", bedrock=bedrock, policy=policy, settings=settings,
                       bedrock_on=any(m.bedrock for m in policy.models),
                       invocation_logging=panel_state(request).invocation_logging.get(ap.team_uid))


@router.post("/{team_uid}/models/bedrock")
async def save_bedrock(ap: AdminDep, form: FormDep) -> Response:
    changes = {"region": form.optional("region"), "endpoint_url": form.optional("endpoint_url"),
               "role_arn": form.optional("role_arn")}
    return await _apply(ap, "models", "Bedrock host configuration saved.",
                        ap.services.control.update_bedrock(ap.caller, ap.team_uid, changes))


@router.post("/{team_uid}/models/routing")
async def save_routing(ap: AdminDep, form: FormDep) -> Response:
    models = {m: (form.checked(f"bedrock.{m}"), form.optional(f"profile.{m}"), form.checked(f"direct.{m}"))
              for m in form.all("model")}
    return await _apply(ap, "models", "Model routing saved.", ap.services.control.update_policy(
        ap.caller, ap.team_uid, direct_api_disabled=form.checked("direct_api_disabled"),
        fallback_order=_csv(form.get("fallback_order")), models=models))


@router.post("/{team_uid}/models/fallbacks")
async def save_fallback_rules(ap: AdminDep, form: FormDep) -> Response:
    """When a paid fallback may serve (credential-less requests, degraded runs) and where failures alert.
    A blank webhook field keeps the stored URL (it is never shown whole); ``remove_webhook`` clears it."""
    changes: dict[str, Any] = {"credentialless_direct_allowed": form.checked("credentialless_direct_allowed"),
                               "degraded_runs_fail": form.checked("degraded_runs_fail")}
    if form.checked("remove_webhook"):
        changes["alert_webhook_url"] = None
    elif form.optional("alert_webhook_url"):
        changes["alert_webhook_url"] = form.optional("alert_webhook_url")
    return await _apply(ap, "models", "Fallback and alert settings saved.",
                        ap.services.control.update_settings(ap.caller, ap.team_uid, changes))


# --- agents --------------------------------------------------------------------------------------------------

@router.get("/{team_uid}/agents")
async def agents_page(request: Request, ap: AdminDep) -> Response:
    control = ap.services.control
    agents = await control.list_agents(ap.caller, ap.team_uid)
    policy = await control.get_policy(ap.caller, ap.team_uid)
    bedrock = await control.get_bedrock(ap.caller, ap.team_uid)
    return await _page(request, ap, "agents.html", "agents", agents=agents, policy=policy, bedrock=bedrock,
                       bedrock_models={m.model for m in policy.models if m.bedrock})


def _agent_fields(form: Form) -> dict[str, Any]:
    custom = form.get("role_mode") == "custom"
    arn = form.optional("role_arn")
    if custom and not arn:
        raise ByollmError(ErrorClass.INVALID_REQUEST,
                          "role_arn_override: choose 'Team default' or paste the custom role's ARN")
    return {"name": form.get("name").strip(), "role_arn_override": arn if custom else None,
            "default_model": form.optional("default_model"), "tools": _csv(form.get("tools"))}


@router.post("/{team_uid}/agents")
async def create_agent(ap: AdminDep, form: FormDep) -> Response:
    async def create() -> None:
        await ap.services.control.create_agent(ap.caller, ap.team_uid, **_agent_fields(form))
    return await _apply(ap, "agents", f"Agent {form.get('name').strip()!r} created.", create())


@router.post("/{team_uid}/agents/{agent_uid}")
async def update_agent(ap: AdminDep, agent_uid: str, form: FormDep) -> Response:
    async def update() -> None:
        await ap.services.control.update_agent(ap.caller, ap.team_uid, agent_uid, _agent_fields(form))
    return await _apply(ap, "agents", f"Agent {form.get('name').strip()!r} saved.", update())


@router.post("/{team_uid}/agents/{agent_uid}/delete")
async def delete_agent(ap: AdminDep, agent_uid: str, form: FormDep) -> Response:
    return await _apply(ap, "agents", "Agent deleted; its tokens were revoked.",
                        ap.services.control.delete_agent(ap.caller, ap.team_uid, agent_uid))


# --- members and tokens --------------------------------------------------------------------------------------

async def _members_page(request: Request, ap: AdminPage, issued: Any = None) -> Response:
    control = ap.services.control
    members = await control.list_members(ap.caller, ap.team_uid)
    tokens = await control.list_tokens(ap.caller, ap.team_uid)
    agents = await control.list_agents(ap.caller, ap.team_uid)
    return await _page(request, ap, "members.html", "members", members=members, tokens=tokens, agents=agents,
                       issued=issued, roles=[r.value for r in Role])


@router.get("/{team_uid}/members")
async def members_page(request: Request, ap: AdminDep) -> Response:
    return await _members_page(request, ap)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "role: choose admin or member") from None


@router.post("/{team_uid}/members")
async def invite_member(request: Request, ap: AdminDep, form: FormDep) -> Response:
    """Invite someone; a person new to byollm gets their first token, shown in this response only."""
    email = form.get("email").strip()
    try:
        invited = await ap.services.control.invite_member(ap.caller, ap.team_uid, email=email,
                                                          display_name=form.optional("display_name"),
                                                          role=_role(form.get("role", "member")))
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        return redirect(f"/admin/{ap.team_uid}/members")
    if invited.first_token is None:
        ap.session.flash("ok", f"{email} invited; they already have a byollm identity and issue their own tokens.")
        return redirect(f"/admin/{ap.team_uid}/members")
    return await _members_page(request, ap, issued=invited.first_token)


@router.post("/{team_uid}/members/{user_uid}/role")
async def set_member_role(ap: AdminDep, user_uid: str, form: FormDep) -> Response:
    async def change() -> None:
        await ap.services.control.set_member_role(ap.caller, ap.team_uid, user_uid, _role(form.get("role")))
    return await _apply(ap, "members", "Role changed.", change())


@router.post("/{team_uid}/members/{user_uid}/remove")
async def remove_member(ap: AdminDep, user_uid: str, form: FormDep) -> Response:
    return await _apply(ap, "members", "Member removed; their team tokens were revoked.",
                        ap.services.control.remove_member(ap.caller, ap.team_uid, user_uid))


@router.post("/{team_uid}/tokens")
async def issue_token(request: Request, ap: AdminDep, form: FormDep) -> Response:
    """Issue a token and show its value in this response only (the panel keeps no copy)."""
    kind, _, uid = form.get("subject", "self:").partition(":")
    days = form.optional("expires_in_days")
    try:
        issued = await ap.services.control.issue_token(
            ap.caller, ap.team_uid, name=form.get("name").strip() or "panel",
            user_uid=uid if kind == "user" and uid else None, agent_uid=uid if kind == "agent" and uid else None,
            expires_in_days=int(days) if days and days.isdigit() else None)
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        return redirect(f"/admin/{ap.team_uid}/members")
    return await _members_page(request, ap, issued=issued)


@router.post("/{team_uid}/tokens/{token_uid}/revoke")
async def revoke_token(ap: AdminDep, token_uid: str, form: FormDep) -> Response:
    return await _apply(ap, "members", "Token revoked.",
                        ap.services.control.revoke_token(ap.caller, ap.team_uid, token_uid))


# --- usage and credits ---------------------------------------------------------------------------------------

@router.get("/{team_uid}/usage")
async def usage_page(request: Request, ap: AdminDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    control = ap.services.control
    until = datetime.now(UTC)
    rows = await control.usage(ap.caller, ap.team_uid, since=until - timedelta(days=days), until=until,
                               group_by=["principal", "model", "host", "bucket"])
    settings = await control.get_settings(ap.caller, ap.team_uid)
    names = {m.user_uid: m.email for m in await control.list_members(ap.caller, ap.team_uid)}
    names.update({a.uid: f"agent {a.name}" for a in await control.list_agents(ap.caller, ap.team_uid)})
    dimensions = []
    for key, title in (("principal", "Member or agent"), ("model", "Model"), ("host", "Host"),
                       ("bucket", "Credit bucket")):
        items = charts.totals(rows, key, names if key == "principal" else None)
        dimensions.append({"key": key, "title": title, "items": items,
                           "charts": [("requests", charts.bars(items)), ("credits", charts.bars(items, "credits"))],
                           "height": max(len(items), 1) * (charts.BAR_HEIGHT + charts.BAR_GAP)})
    return await _page(request, ap, "usage.html", "usage", days=days, periods=_PERIODS, dimensions=dimensions,
                       settings=settings, chart_width=charts.CHART_WIDTH, bar_height=charts.BAR_HEIGHT)


# --- requests ------------------------------------------------------------------------------------------------

REQUESTS_PAGE = 50


@router.get("/{team_uid}/requests")
async def requests_page(request: Request, ap: AdminDep, member: str = "", model: str = "", route: str = "",
                        outcome: str = "", request_id: Annotated[str, Query(alias="id", max_length=64)] = "",
                        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    """The request log with filters (GET, so a filtered view is a link); an ``x-request-id`` finds its row."""
    control = ap.services.control
    filters = {"member": member.strip(), "model": model.strip(), "route": route, "outcome": outcome,
               "id": request_id.strip()}
    try:
        rows = await control.list_requests(
            ap.caller, ap.team_uid, limit=REQUESTS_PAGE + 1, offset=offset, member=filters["member"] or None,
            model=filters["model"] or None, route=route or None, outcome=outcome or None,
            request_id=filters["id"] or None)
        problem = None
    except ByollmError as exc:
        rows, problem = [], exc
    members = await control.list_members(ap.caller, ap.team_uid)
    agents = await control.list_agents(ap.caller, ap.team_uid)
    policy = await control.get_policy(ap.caller, ap.team_uid)
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return await _page(request, ap, "requests.html", "requests", rows=rows[:REQUESTS_PAGE], filters=filters,
                       problem=problem, members=members, agents=agents, models=policy.models,
                       hosts=[h.value for h in Host], offset=offset, page=REQUESTS_PAGE,
                       older=offset + REQUESTS_PAGE if len(rows) > REQUESTS_PAGE else None,
                       newer=max(0, offset - REQUESTS_PAGE) if offset else None, query=query)


# --- runs ----------------------------------------------------------------------------------------------------

@router.get("/{team_uid}/runs")
async def runs_page(request: Request, ap: AdminDep, state: str | None = None) -> Response:
    runs = await _runs(ap).list_runs(ap.caller, ap.team_uid, state=state or None, limit=200)
    agents = await ap.services.control.list_agents(ap.caller, ap.team_uid)
    return await _page(request, ap, "runs.html", "runs", runs=runs, agents=agents, state=state or "")


@router.post("/{team_uid}/runs")
async def start_run(ap: AdminDep, form: FormDep) -> Response:
    try:
        run = await _runs(ap).start(ap.caller, ap.team_uid, prompt=form.get("prompt"),
                                    model=form.optional("model"), agent=form.optional("agent"))
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        return redirect(f"/admin/{ap.team_uid}/runs")
    ap.session.flash("ok", "Run queued.")
    return redirect(f"/admin/{ap.team_uid}/runs/{run.uid}")


def _event_json(event: Any) -> str:
    return orjson.dumps({"seq": event.seq, "kind": event.kind, "at": event.at.isoformat(),
                         "data": event.data}).decode()


@router.get("/{team_uid}/runs/{run_uid}")
async def run_page(request: Request, ap: AdminDep, run_uid: str) -> Response:
    runs = _runs(ap)
    run = await runs.get(ap.caller, ap.team_uid, run_uid)
    events = await runs.events(ap.caller, ap.team_uid, run_uid)
    return await _page(request, ap, "run.html", "runs", run=run, events=events,
                       event_data=lambda e: orjson.dumps(e.data).decode(), last_seq=events[-1].seq if events else 0)


@router.get("/{team_uid}/runs/{run_uid}/events")
async def run_events(ap: AdminDep, run_uid: str, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    """The run's events as Server-Sent Events, for the run page's EventSource (session-authenticated)."""
    events = await _runs(ap).watch(ap.caller, ap.team_uid, run_uid, after=after)

    async def body() -> AsyncIterator[bytes]:
        idle = 0.0
        async for event in events:
            if event is None:
                idle += 2.0
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                continue
            idle = 0.0
            yield f"id: {event.seq}\nevent: run\ndata: {_event_json(event)}\n\n".encode()
        yield b"event: end\ndata: {}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"x-accel-buffering": "no"})


@router.post("/{team_uid}/runs/{run_uid}/steer")
async def steer_run(ap: AdminDep, run_uid: str, form: FormDep) -> Response:
    return await _apply(ap, f"runs/{run_uid}", "Message sent to the run.",
                        _runs(ap).steer(ap.caller, ap.team_uid, run_uid, message=form.get("message")))


@router.post("/{team_uid}/runs/{run_uid}/cancel")
async def cancel_run(ap: AdminDep, run_uid: str, form: FormDep) -> Response:
    return await _apply(ap, f"runs/{run_uid}", "Cancellation requested.",
                        _runs(ap).cancel(ap.caller, ap.team_uid, run_uid))


# --- audit ---------------------------------------------------------------------------------------------------

def _pretty(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str) if value is not None else ""


@router.get("/{team_uid}/audit")
async def audit_page(request: Request, ap: AdminDep) -> Response:
    entries = await ap.services.control.list_audit(ap.caller, ap.team_uid, limit=200)
    return await _page(request, ap, "audit.html", "audit", entries=entries, pretty=_pretty)


# --- validate (the configuration doctor) --------------------------------------------------------------------

def _fix_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document, indent=2, sort_keys=False)


async def _validate_page(request: Request, ap: AdminPage, report: Any = None, form: Form | None = None) -> Response:
    agents = await ap.services.control.list_agents(ap.caller, ap.team_uid)
    policy = await ap.services.control.get_policy(ap.caller, ap.team_uid)
    fixes = {}
    if report is not None:
        fixes = {c.id: [(fmt, _fix_text(doc)) for fmt, doc in (c.fixes or {}).items()] for c in report.checks}
        panel_state(request).invocation_logging[ap.team_uid] = str(report.invocation_logging)
    return await _page(request, ap, "validate.html", "validate", agents=agents, report=report, fixes=fixes,
                       bedrock_on=any(m.bedrock for m in policy.models),
                       doctor_available=ap.services.doctor is not None,
                       agent_uid=form.get("agent_uid") if form else "",
                       trust=form.get("trust_policy") if form else "",
                       permissions=form.get("permissions_policy") if form else "")


@router.get("/{team_uid}/validate")
async def validate_page(request: Request, ap: AdminDep) -> Response:
    return await _validate_page(request, ap)


def _pasted(form: Form, name: str) -> dict[str, Any] | None:
    """A pasted policy document as JSON, or None when the field is blank."""
    text = form.optional(name)
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ByollmError(ErrorClass.INVALID_REQUEST, f"{name}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ByollmError(ErrorClass.INVALID_REQUEST, f"{name}: expected a JSON policy document (an object)")
    return document


@router.post("/{team_uid}/validate")
async def run_validate(request: Request, ap: AdminDep, form: FormDep) -> Response:
    """Run the doctor (optionally for one agent, with pasted policies) and show every check."""
    if ap.services.doctor is None:
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "the configuration doctor is not available in this process")
    try:
        trust, permissions = _pasted(form, "trust_policy"), _pasted(form, "permissions_policy")
    except ByollmError as exc:
        ap.session.flash("error", exc.detail, exc.error_class.remediation)
        return await _validate_page(request, ap, None, form)
    report = await ap.services.doctor.validate(ap.caller, ap.team_uid, agent_uid=form.optional("agent_uid"),
                                               pasted_trust_policy=trust, pasted_permissions_policy=permissions)
    return await _validate_page(request, ap, report, form)
