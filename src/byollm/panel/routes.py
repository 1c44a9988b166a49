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
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from byollm.panel.run_events import describe
from byollm.panel.sessions import SIGNIN_COOKIE, Flash
from byollm.panel.web import (
    NOTHING_TYPED,
    AdminPage,
    Form,
    PanelRoute,
    Typed,
    admin_page,
    field_of,
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
    """Run one service call for a form without inputs of its own (a button), then redirect back with its
    outcome as a one-time message."""
    try:
        result = await action
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
    else:
        ap.session.flash("ok", done)
        _flash_warnings(ap, result)
    return redirect(f"/admin/{ap.team_uid}/{back}")


def _flash_warnings(ap: AdminPage, result: object) -> None:
    """Warnings a saved result carries (e.g. a model its last validated permissions policy does not cover)."""
    for warning in getattr(result, "warnings", None) or ():
        ap.session.flash("warn", scrub(str(warning)))


PageFn = Callable[[Request, AdminPage, Typed], Awaitable[Response]]


async def _submit(request: Request, ap: AdminPage, form: Form, form_id: str, page: PageFn, back: str, done: str,
                  action: Callable[[], Awaitable[object]], field: str = "") -> Response:
    """Run one service call for a form the admin typed into. Success: redirect back with a message.
    Refused: the same page again (not a redirect), the form holding everything typed and the error beside
    its field (``field`` when the error names none), so nothing has to be typed twice."""
    try:
        result = await action()
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        response = await page(request, ap, Typed(form_id, form, field_of(exc) or field, scrub(exc.detail)))
        response.status_code = exc.status
        return response
    ap.session.flash("ok", done)
    _flash_warnings(ap, result)
    return redirect(f"/admin/{ap.team_uid}/{back}")


async def _confirm(request: Request, ap: AdminPage, form: Form, *, section: str, question: str,
                   consequence: str, button: str) -> Response | None:
    """None when the form says it was confirmed; otherwise the confirmation page for a destructive action
    (a second POST with ``confirm=yes``). A page rather than a dialog: it needs no script, and a stray click
    or Enter on the first button changes nothing."""
    if form.get("confirm") == "yes":
        return None
    return await _page(request, ap, "confirm.html", section, question=question, consequence=consequence,
                       action=request.url.path, button=button, back=f"/admin/{ap.team_uid}/{section}")


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

async def _models_page(request: Request, ap: AdminPage, typed: Typed = NOTHING_TYPED) -> Response:
    control = ap.services.control
    bedrock = await control.get_bedrock(ap.caller, ap.team_uid)
    policy = await control.get_policy(ap.caller, ap.team_uid)
    settings = await control.get_settings(ap.caller, ap.team_uid)
    usable = [m for m in policy.models if m.bedrock or (m.direct and not policy.direct_api_disabled)]
    usable_ids = {m.model for m in usable}
    return await _page(request, ap, "models.html", "models", bedrock=bedrock, policy=policy, typed=typed,
                       settings=settings, bedrock_on=any(m.bedrock for m in policy.models), usable=usable,
                       fallback_usable=[m for m in policy.fallback_order if m in usable_ids],
                       fallback_unusable=[m for m in policy.fallback_order if m not in usable_ids],
                       invocation_logging=panel_state(request).invocation_logging.get(ap.team_uid),
                       aliases_text="\n".join(f"{a.pattern} => {a.target}" for a in policy.aliases),
                       bedrock_model_discovery=settings.bedrock_model_discovery)


@router.get("/{team_uid}/models")
async def models_page(request: Request, ap: AdminDep) -> Response:
    return await _models_page(request, ap)


@router.post("/{team_uid}/models/bedrock")
async def save_bedrock(request: Request, ap: AdminDep, form: FormDep) -> Response:
    changes = {"region": form.optional("region"), "endpoint_url": form.optional("endpoint_url"),
               "role_arn": form.optional("role_arn")}
    return await _submit(request, ap, form, "bedrock", _models_page, "models", "Bedrock host configuration saved.",
                         lambda: ap.services.control.update_bedrock(ap.caller, ap.team_uid, changes))


@router.post("/{team_uid}/models/routing")
async def save_routing(request: Request, ap: AdminDep, form: FormDep) -> Response:
    models = {m: (form.checked(f"bedrock.{m}"), form.optional(f"profile.{m}"), form.checked(f"direct.{m}"))
              for m in form.all("model")}
    return await _submit(request, ap, form, "routing", _models_page, "models", "Model routing saved.",
                         lambda: ap.services.control.update_policy(
                             ap.caller, ap.team_uid, direct_api_disabled=form.checked("direct_api_disabled"),
                             fallback_order=_csv(form.get("fallback_order")), models=models))


def _alias_lines(text: str) -> list[tuple[str, str]]:
    """``pattern => target`` per line (``->`` and ``=`` work too); blank lines are skipped. A line without an
    arrow keeps its text as the pattern and an empty target, which the service refuses naming the line."""
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for arrow in ("=>", "->", "="):
            pattern, sep, target = line.partition(arrow)
            if sep:
                pairs.append((pattern.strip(), target.strip()))
                break
        else:
            pairs.append((line.strip(), ""))
    return pairs


@router.post("/{team_uid}/models/names")
async def save_model_names(request: Request, ap: AdminDep, form: FormDep) -> Response:
    """Aliases (replaced as a whole, in the order typed) and the two switches for names byollm does not ship."""
    control = ap.services.control

    async def save() -> object:
        await control.update_policy(ap.caller, ap.team_uid, aliases=_alias_lines(form.get("aliases")))
        return await control.update_settings(ap.caller, ap.team_uid, {
            "claude_family_mapping": form.checked("claude_family_mapping"),
            "bedrock_model_discovery": form.checked("bedrock_model_discovery")})

    return await _submit(request, ap, form, "names", _models_page, "models", "Model names saved.", save,
                         field="aliases")


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

async def _agents_page(request: Request, ap: AdminPage, typed: Typed = NOTHING_TYPED) -> Response:
    control = ap.services.control
    agents = await control.list_agents(ap.caller, ap.team_uid)
    policy = await control.get_policy(ap.caller, ap.team_uid)
    bedrock = await control.get_bedrock(ap.caller, ap.team_uid)
    return await _page(request, ap, "agents.html", "agents", agents=agents, policy=policy, bedrock=bedrock,
                       bedrock_models={m.model for m in policy.models if m.bedrock}, typed=typed)


@router.get("/{team_uid}/agents")
async def agents_page(request: Request, ap: AdminDep) -> Response:
    return await _agents_page(request, ap)


def _agent_fields(form: Form) -> dict[str, Any]:
    custom = form.get("role_mode") == "custom"
    arn = form.optional("role_arn")
    if custom and not arn:
        raise ByollmError(ErrorClass.INVALID_REQUEST,
                          "role_arn_override: choose 'Team default' or paste the custom role's ARN")
    return {"name": form.get("name").strip(), "role_arn_override": arn if custom else None,
            "default_model": form.optional("default_model"), "tools": _csv(form.get("tools"))}


@router.post("/{team_uid}/agents")
async def create_agent(request: Request, ap: AdminDep, form: FormDep) -> Response:
    async def create() -> None:
        await ap.services.control.create_agent(ap.caller, ap.team_uid, **_agent_fields(form))
    return await _submit(request, ap, form, "new", _agents_page, "agents",
                         f"Agent {form.get('name').strip()!r} created.", create, field="name")


@router.post("/{team_uid}/agents/{agent_uid}")
async def update_agent(request: Request, ap: AdminDep, agent_uid: str, form: FormDep) -> Response:
    async def update() -> None:
        await ap.services.control.update_agent(ap.caller, ap.team_uid, agent_uid, _agent_fields(form))
    return await _submit(request, ap, form, f"edit-{agent_uid}", _agents_page, "agents",
                         f"Agent {form.get('name').strip()!r} saved.", update)


@router.post("/{team_uid}/agents/{agent_uid}/delete")
async def delete_agent(request: Request, ap: AdminDep, agent_uid: str, form: FormDep) -> Response:
    agent = next((a for a in await ap.services.control.list_agents(ap.caller, ap.team_uid) if a.uid == agent_uid),
                 None)
    label = f"agent {agent.name}" if agent else "this agent"
    asked = await _confirm(request, ap, form, section="agents", question=f"Delete {label}?",
                           consequence="Its tokens are revoked at once and its runs can no longer start."
                                       " Past requests, runs and audit entries keep its name.",
                           button=f"Delete {label}")
    return asked or await _apply(ap, "agents", "Agent deleted; its tokens were revoked.",
                                 ap.services.control.delete_agent(ap.caller, ap.team_uid, agent_uid))


# --- members and tokens --------------------------------------------------------------------------------------

async def _members_page(request: Request, ap: AdminPage, typed: Typed = NOTHING_TYPED,
                        issued: Any = None) -> Response:
    control = ap.services.control
    members = await control.list_members(ap.caller, ap.team_uid)
    tokens = await control.list_tokens(ap.caller, ap.team_uid)
    agents = await control.list_agents(ap.caller, ap.team_uid)
    names = await control.display_names(ap.caller, ap.team_uid, [t.principal_uid for t in tokens])
    return await _page(request, ap, "members.html", "members", members=members, tokens=tokens, agents=agents,
                       issued=issued, roles=[r.value for r in Role], names=names, typed=typed)


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
    """Invite someone; a person new to byollm gets their first token, shown in this response only. A refused
    invitation comes back with what was typed, the error beside the email."""
    email = form.get("email").strip()
    try:
        invited = await ap.services.control.invite_member(ap.caller, ap.team_uid, email=email,
                                                          display_name=form.optional("display_name"),
                                                          role=_role(form.get("role", "member")))
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        response = await _members_page(request, ap, Typed("invite", form, field_of(exc) or "email",
                                                          scrub(exc.detail)))
        response.status_code = exc.status
        return response
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
async def remove_member(request: Request, ap: AdminDep, user_uid: str, form: FormDep) -> Response:
    label = (await ap.services.control.display_names(ap.caller, ap.team_uid, [user_uid])).get(user_uid, "this member")
    asked = await _confirm(request, ap, form, section="members", question=f"Remove {label} from the team?",
                           consequence="Their tokens for this team are revoked at once and their running cloud"
                                       " runs are cancelled. You can invite them again later.",
                           button=f"Remove {label}")
    return asked or await _apply(ap, "members", "Member removed; their team tokens were revoked.",
                                 ap.services.control.remove_member(ap.caller, ap.team_uid, user_uid))


@router.post("/{team_uid}/tokens")
async def issue_token(request: Request, ap: AdminDep, form: FormDep) -> Response:
    """Issue a token and show its value in this response only (the panel keeps no copy)."""
    kind, _, uid = form.get("subject", "self:").partition(":")
    days = form.optional("expires_in_days")
    try:
        if days and not days.isdigit():
            raise ByollmError(ErrorClass.INVALID_REQUEST, "expires_in_days: a whole number of days, or blank")
        issued = await ap.services.control.issue_token(
            ap.caller, ap.team_uid, name=form.get("name").strip() or "panel",
            user_uid=uid if kind == "user" and uid else None, agent_uid=uid if kind == "agent" and uid else None,
            expires_in_days=int(days) if days else None)
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        response = await _members_page(request, ap, Typed("issue", form, field_of(exc), scrub(exc.detail)))
        response.status_code = exc.status
        return response
    return await _members_page(request, ap, issued=issued)


@router.post("/{team_uid}/tokens/{token_uid}/revoke")
async def revoke_token(request: Request, ap: AdminDep, token_uid: str, form: FormDep) -> Response:
    label = (await ap.services.control.display_names(ap.caller, ap.team_uid, [token_uid])).get(token_uid, "this token")
    asked = await _confirm(request, ap, form, section="members", question=f"Revoke {label}?",
                           consequence="Every client using it gets 401 from its next request on; this cannot be"
                                       " undone (issue a new token instead).",
                           button=f"Revoke {label}")
    return asked or await _apply(ap, "members", "Token revoked.",
                                 ap.services.control.revoke_token(ap.caller, ap.team_uid, token_uid))


# --- usage and credits ---------------------------------------------------------------------------------------

ALLOWANCES = (("monthly_ai_credits", "ai_credits", "AI credits", "direct-API requests paid by the operator's key"),
              ("platform_credits", "platform", "Platform credits", "orchestrating cloud agent runs"),
              ("compute_credits", "compute", "Compute credits", "cloud agent runs' sandbox time"))
"""The three allowances: setting name, ledger bucket, label, what draws on it."""


async def _usage_page(request: Request, ap: AdminPage, typed: Typed = NOTHING_TYPED, days: int = 30) -> Response:
    control = ap.services.control
    until = datetime.now(UTC)
    rows = await control.usage(ap.caller, ap.team_uid, since=until - timedelta(days=days), until=until,
                               group_by=["principal", "model", "host", "bucket"])
    month_start = until.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used_rows = await control.usage(ap.caller, ap.team_uid, since=month_start, until=until, group_by=["bucket"])
    used = {r.bucket: Decimal(r.credits) for r in used_rows if r.bucket}
    settings = await control.get_settings(ap.caller, ap.team_uid)
    allowances = [{"field": name, "label": label, "what": what, "allowance": getattr(settings, name),
                   "used": used.get(bucket, Decimal(0)),
                   "remaining": Decimal(getattr(settings, name)) - used.get(bucket, Decimal(0))}
                  for name, bucket, label, what in ALLOWANCES]
    names = {m.user_uid: m.email for m in await control.list_members(ap.caller, ap.team_uid)}
    names.update({a.uid: f"agent {a.name}" for a in await control.list_agents(ap.caller, ap.team_uid)})
    names.update(await control.display_names(ap.caller, ap.team_uid, {r.principal for r in rows if r.principal}))
    dimensions = []
    for key, title in (("principal", "Member or agent"), ("model", "Model"), ("host", "Host"),
                       ("bucket", "Billing bucket")):
        items = charts.totals(rows, key, names if key == "principal" else None)
        dimensions.append({"key": key, "title": title, "items": items, "requests": charts.bars(items),
                           "credits": charts.stacked_credits(items),
                           "height": max(len(items), 1) * (charts.BAR_HEIGHT + charts.BAR_GAP)})
    return await _page(request, ap, "usage.html", "usage", days=days, periods=_PERIODS, dimensions=dimensions,
                       settings=settings, allowances=allowances, month=until.strftime("%B %Y"), typed=typed,
                       buckets=charts.CREDIT_BUCKETS, chart_width=charts.CHART_WIDTH, bar_height=charts.BAR_HEIGHT)


@router.get("/{team_uid}/usage")
async def usage_page(request: Request, ap: AdminDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    return await _usage_page(request, ap, days=days)


def _credits(form: Form, name: str) -> int:
    text = form.get(name).strip().replace(",", "").replace("_", "")
    if not text.isdigit() or len(text) > 15:
        raise ByollmError(ErrorClass.INVALID_REQUEST, f"{name}: a whole number of credits, 0 or more",
                          field=name)
    return int(text)


@router.post("/{team_uid}/usage/allowances")
async def save_allowances(request: Request, ap: AdminDep, form: FormDep) -> Response:
    async def save() -> None:
        changes = {name: _credits(form, name) for name, *_ in ALLOWANCES}
        await ap.services.control.update_settings(ap.caller, ap.team_uid, changes)
    return await _submit(request, ap, form, "allowances", _usage_page, "usage", "Monthly allowances saved.", save)


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

async def _runs_page(request: Request, ap: AdminPage, typed: Typed = NOTHING_TYPED, state: str = "") -> Response:
    runs = await _runs(ap).list_runs(ap.caller, ap.team_uid, state=state or None, limit=200)
    agents = await ap.services.control.list_agents(ap.caller, ap.team_uid)
    policy = await ap.services.control.get_policy(ap.caller, ap.team_uid)
    names = await ap.services.control.display_names(
        ap.caller, ap.team_uid, {u for r in runs for u in (r.started_by_uid, r.agent_uid) if u})
    return await _page(request, ap, "runs.html", "runs", runs=runs, agents=agents, state=state, names=names,
                       models=policy.models, typed=typed)


@router.get("/{team_uid}/runs")
async def runs_page(request: Request, ap: AdminDep, state: str | None = None) -> Response:
    return await _runs_page(request, ap, state=state or "")


@router.post("/{team_uid}/runs")
async def start_run(request: Request, ap: AdminDep, form: FormDep) -> Response:
    try:
        run = await _runs(ap).start(ap.caller, ap.team_uid, prompt=form.get("prompt"),
                                    model=form.optional("model"), agent=form.optional("agent"))
    except ByollmError as exc:
        ap.session.flash("error", scrub(exc.detail), exc.error_class.remediation)
        response = await _runs_page(request, ap, Typed("start", form, field_of(exc), scrub(exc.detail)))
        response.status_code = exc.status
        return response
    ap.session.flash("ok", "Run queued.")
    return redirect(f"/admin/{ap.team_uid}/runs/{run.uid}")


def _event_json(event: Any, names: dict[str, str]) -> str:
    body = {"seq": event.seq, "kind": event.kind, "at": event.at.isoformat(),
            "view": describe(event.kind, event.data, names).as_dict()}
    if event.kind == "state":
        body["state"] = event.data.get("state")
    return orjson.dumps(body).decode()


async def _run_names(ap: AdminPage, run: Any, events: list[Any]) -> dict[str, str]:
    uids = {run.started_by_uid, run.agent_uid, *(str(e.data.get("by")) for e in events if e.data.get("by"))}
    return await ap.services.control.display_names(ap.caller, ap.team_uid, {u for u in uids if u})


@router.get("/{team_uid}/runs/{run_uid}")
async def run_page(request: Request, ap: AdminDep, run_uid: str) -> Response:
    runs = _runs(ap)
    run = await runs.get(ap.caller, ap.team_uid, run_uid)
    events = await runs.events(ap.caller, ap.team_uid, run_uid)
    names = await _run_names(ap, run, events)
    described = [(e, describe(e.kind, e.data, names)) for e in events]
    return await _page(request, ap, "run.html", "runs", run=run, events=described, names=names,
                       last_seq=events[-1].seq if events else 0)


@router.get("/{team_uid}/runs/{run_uid}/facts")
async def run_facts(request: Request, ap: AdminDep, run_uid: str) -> Response:
    """The run page's header alone (state, attempts, error), which its script swaps in when the run ends."""
    run = await _runs(ap).get(ap.caller, ap.team_uid, run_uid)
    names = await _run_names(ap, run, [])
    return render(request, "run_facts.html", session=ap.session, run=run, names=names)


@router.get("/{team_uid}/runs/{run_uid}/events")
async def run_events(ap: AdminDep, run_uid: str, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    """The run's events as Server-Sent Events, for the run page's EventSource (session-authenticated)."""
    events = await _runs(ap).watch(ap.caller, ap.team_uid, run_uid, after=after)
    names = await ap.services.control.display_names(ap.caller, ap.team_uid, [ap.caller.principal_uid])

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
            by = str(event.data.get("by") or "")
            if by and by not in names:
                names.update(await ap.services.control.display_names(ap.caller, ap.team_uid, [by]))
            yield f"id: {event.seq}\nevent: run\ndata: {_event_json(event, names)}\n\n".encode()
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
    names = await ap.services.control.display_names(
        ap.caller, ap.team_uid, {u for e in entries for u in (e.actor_uid, e.target) if u})
    return await _page(request, ap, "audit.html", "audit", entries=entries, pretty=_pretty, names=names)


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
