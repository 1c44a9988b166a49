"""The panel's plumbing: per-app state, templates, security headers, sign-in and CSRF gates, error pages.

Why a custom route class and not middleware: ``api/app.py`` mounts the panel as one router, and every
panel response (pages, redirects, error pages, the events stream) must carry the same security headers
and turn a ``ByollmError`` into an HTML page with its remediation rather than the API's JSON. Wrapping the
panel's route handlers does both without touching the API's behaviour.

Headers on every panel response: a ``Content-Security-Policy`` that allows scripts, styles and forms from
this origin only (no inline script), ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` (no
click-jacking), ``nosniff``, ``no-referrer`` and ``no-store`` (pages hold configuration, and one shows a
new token). No CORS headers are ever sent, so other origins cannot read panel pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from byollm.api.auth import services_of
from byollm.control.authz import Caller
from byollm.errors import ByollmError, ErrorClass
from byollm.panel.charts import credits_text
from byollm.panel.sessions import COOKIE_NAME, CSRF_FIELD, SIGNIN_COOKIE, Flash, PanelSession, SessionStore
from byollm.policy.types import Role
from byollm.redact import redact
from byollm.services import Services

__all__ = [
    "NOTHING_TYPED",
    "SECURITY_HEADERS",
    "AdminPage",
    "CsrfRefused",
    "Form",
    "PanelRoute",
    "PanelState",
    "SignInRequired",
    "Typed",
    "admin_page",
    "field_of",
    "panel_state",
    "read_form",
    "redirect",
    "render",
    "scrub",
    "session_of",
    "set_session_cookie",
    "set_signin_cookie",
    "signed_in",
    "signin_form_csrf",
]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
MAX_FORM_BYTES = 256 * 1024


def scrub(text: str) -> str:
    """``text`` with anything credential-shaped masked: error details may echo form input, and an admin may
    paste a token or a key into the wrong field; it must not come back in a page."""
    return redact(text)


_FIELD = re.compile(r"^([A-Za-z_][\w.\-]*)(\[\d+\])?: ")


def field_of(error: ByollmError) -> str:
    """The form input an error is about, as the panel names its inputs: the service names the field in the
    error's context or as the detail's ``field: ...`` prefix (``models.<id>.inference_profile`` is the
    input ``profile.<id>``, ``models.<id>`` is ``bedrock.<id>``, ``role_arn_override`` is ``role_arn``);
    "" when it names none."""
    named = error.context.get("field")
    match = _FIELD.match(error.detail)
    field = str(named) if isinstance(named, str) and named else match.group(1) if match else ""
    field = re.sub(r"\[\d+\]$", "", field)
    if field.startswith("models.") and field.endswith(".inference_profile"):
        return "profile." + field[len("models."):-len(".inference_profile")]
    if field.startswith("models."):
        return "bedrock." + field[len("models."):]
    return {"role_arn_override": "role_arn"}.get(field, field)


class Typed:
    """What the admin typed into the one form on a page that was refused, and the error for its field, so
    the page comes back with every value kept and the error beside the input (not only at the top).

    Templates call it for every input: ``typed.value(form, name, saved)`` is the typed value for the
    refused form and the saved one otherwise; ``typed.attrs(form, name)`` marks the input invalid and ties
    it to its message; ``typed.error(form, name)`` is the message itself."""

    def __init__(self, form_id: str = "", values: Form | None = None, field: str = "", message: str = "") -> None:
        self.form_id = form_id
        self._values = values
        self.field = field
        self.message = message

    def active(self, form_id: str) -> bool:
        return bool(self._values is not None and form_id == self.form_id)

    def value(self, form_id: str, name: str, saved: object = "") -> str:
        if self._values is not None and form_id == self.form_id:
            return scrub(self._values.get(name))  # a token pasted into the wrong field does not come back
        return "" if saved is None else str(saved)

    def checked(self, form_id: str, name: str, saved: bool) -> bool:
        if self._values is not None and form_id == self.form_id:
            return self._values.checked(name)
        return saved

    def _is(self, form_id: str, name: str) -> bool:
        return self.active(form_id) and self.field == name

    def attrs(self, form_id: str, name: str) -> Markup:
        if not self._is(form_id, name):
            return Markup("")
        return Markup(' aria-invalid="true" aria-describedby="{}"').format(_error_id(form_id, name))

    def error(self, form_id: str, name: str) -> Markup:
        if not self._is(form_id, name):
            return Markup("")
        return Markup('<p class="field-error" id="{}">{}</p>').format(_error_id(form_id, name), self.message)

    def unplaced(self, form_id: str, names: tuple[str, ...] = ()) -> Markup:
        """The error of a refused form whose field has no input of its own (shown at the form's top)."""
        if not self.active(form_id) or (self.field and self.field in names):
            return Markup("")
        return Markup('<p class="field-error" id="{}">{}</p>').format(_error_id(form_id, ""), self.message)


def _error_id(form_id: str, name: str) -> str:
    return "err-" + re.sub(r"[^A-Za-z0-9_-]", "-", f"{form_id}-{name}".strip("-"))


NOTHING_TYPED = Typed()


class SignInRequired(Exception):
    """No signed-in session: the wrapper redirects to the sign-in page."""


class CsrfRefused(Exception):
    """A POST without this session's CSRF token: refused with 403 before anything runs."""


@dataclass
class PanelState:
    """What the panel keeps per app: its templates, its sessions, and the last invocation-logging finding
    per team (so the Models page can repeat what Validate found without re-running the doctor)."""

    templates: Environment
    sessions: SessionStore
    invocation_logging: dict[str, str] = field(default_factory=dict)


def panel_state(request: Request) -> PanelState:
    """The app's panel state, built on first use (``create_app`` builds nothing for the panel eagerly)."""
    state: PanelState | None = getattr(request.app.state, "panel", None)
    if state is None:
        env = Environment(loader=PackageLoader("byollm.panel", "templates"),
                          autoescape=select_autoescape(default=True, default_for_string=True),
                          trim_blocks=True, lstrip_blocks=True)
        env.filters["credits"] = credits_text
        services: Services | None = getattr(request.app.state, "services", None)
        per_address = services.settings.panel_sessions_per_address if services is not None else None
        state = PanelState(templates=env, sessions=SessionStore(max_per_address=per_address)
                           if per_address is not None else SessionStore())
        request.app.state.panel = state
    return state


def _secure(request: Request, services: Services | None) -> bool:
    public = services.settings.public_url if services is not None else None
    return request.url.scheme == "https" or bool(public and public.startswith("https://"))


def set_session_cookie(request: Request, response: Response, session: PanelSession) -> None:
    """HttpOnly, SameSite=Strict, scoped to /admin, Secure whenever the panel is reached over https; no
    Max-Age (the browser forgets it on exit; the server expires it sooner)."""
    services: Services | None = getattr(request.app.state, "services", None)
    response.set_cookie(COOKIE_NAME, session.sid, httponly=True, samesite="strict", path="/admin",
                        secure=_secure(request, services))


def signin_form_csrf(request: Request, response_cookie: list[str]) -> str:
    """The sign-in form's CSRF token for this visitor, keyed on their ``SIGNIN_COOKIE`` (no server state). A
    visitor without one gets a new nonce, appended to ``response_cookie`` for the caller to set."""
    nonce = request.cookies.get(SIGNIN_COOKIE) or ""
    if not nonce or len(nonce) > 64:
        nonce = SessionStore.new_signin_nonce()
        response_cookie.append(nonce)
    return panel_state(request).sessions.sign_in_csrf(nonce)


def set_signin_cookie(request: Request, response: Response, nonce: str) -> None:
    services: Services | None = getattr(request.app.state, "services", None)
    response.set_cookie(SIGNIN_COOKIE, nonce, httponly=True, samesite="strict", path="/admin",
                        secure=_secure(request, services))


def session_of(request: Request) -> PanelSession | None:
    return panel_state(request).sessions.get(request.cookies.get(COOKIE_NAME))


class Form:
    """A parsed ``application/x-www-form-urlencoded`` body (checkboxes are present-or-absent)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def optional(self, name: str) -> str | None:
        value = self.get(name).strip()
        return value or None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def checked(self, name: str) -> bool:
        return any(k == name for k, _ in self._pairs)


async def read_form(request: Request) -> Form:
    """Parse the form body and check its CSRF token against the session's; ``CsrfRefused`` otherwise."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "the form is too large")
    form = Form(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    session = session_of(request)
    if session is not None:
        if not session.csrf_ok(form.get(CSRF_FIELD)):
            raise CsrfRefused
    elif request.url.path != "/admin/sign-in" or not panel_state(request).sessions.sign_in_csrf_ok(
            request.cookies.get(SIGNIN_COOKIE), form.get(CSRF_FIELD)):
        raise CsrfRefused  # without a session, only the sign-in form, with its cookie-bound token
    return form


@dataclass(frozen=True, slots=True)
class AdminPage:
    """A signed-in team admin on one of their team's pages."""

    caller: Caller
    session: PanelSession
    team_uid: str
    services: Services


async def signed_in(request: Request) -> tuple[Caller, PanelSession]:
    """The signed-in session and its caller (re-authenticated now, so revocation takes effect)."""
    session = session_of(request)
    if session is None or session.token is None:
        raise SignInRequired
    try:
        caller = await services_of(request).control.authenticate(session.token)
    except ByollmError:
        panel_state(request).sessions.end(session.sid)
        raise SignInRequired from None
    return caller, session


async def admin_page(request: Request, team_uid: str) -> AdminPage:
    """FastAPI dependency for every team page: signed in, and an admin of ``team_uid``.

    A member gets 403 with a clear message; someone outside the team gets the control plane's
    ``not_found`` (team UIDs cannot be probed)."""
    caller, session = await signed_in(request)
    role = caller.role_in(team_uid)
    if role is None:
        raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=team_uid)
    if role is not Role.ADMIN:
        raise ByollmError(ErrorClass.FORBIDDEN,
                          "the admin panel is for team admins; your role in this team is member."
                          " Ask a team admin to change what you need, or use `byollm` with your own token.")
    return AdminPage(caller=caller, session=session, team_uid=team_uid, services=services_of(request))


def render(request: Request, template: str, *, status_code: int = 200, session: PanelSession | None = None,
           csrf: str | None = None, flashes: list[Flash] | None = None, **context: Any) -> HTMLResponse:
    """Render a page with the session's CSRF token (or ``csrf``, the sign-in form's) and pending flashes."""
    session = session or session_of(request)
    env = panel_state(request).templates
    token = session.csrf if session else (csrf or "")
    csrf_input = Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)
    context.setdefault("typed", NOTHING_TYPED)
    shown = (session.take_flashes() if session else []) + (flashes or [])
    html = env.get_template(template).render(
        csrf_input=csrf_input,
        flashes=shown, signed_in=bool(session and session.signed_in),
        request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


def redirect(path: str) -> RedirectResponse:
    """A 303 to a panel path (post/redirect/get). Only local paths: no open redirects."""
    safe = path if path.startswith("/admin") and "//" not in path else "/admin"
    return RedirectResponse(quote(safe, safe="/?=&-_.~%"), status_code=303)


def _error_page(request: Request, error: ByollmError) -> Response:
    session = session_of(request)
    return render(request, "error.html", status_code=error.status, session=session,
                  title=error.error_class.title, code=error.error_class.code, detail=scrub(error.detail),
                  remediation=error.error_class.remediation)


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class PanelRoute(APIRoute):
    """Route class for every panel route: security headers on every response, HTML error pages."""

    def get_route_handler(self) -> Endpoint:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except SignInRequired:
                response = redirect("/admin")
            except CsrfRefused:
                response = render(request, "error.html", status_code=403, title="Form refused",
                                  code="csrf_refused",
                                  detail="the form did not carry this session's CSRF token, so nothing changed",
                                  remediation="Reload the page and submit the form again.")
            except ByollmError as exc:
                response = _error_page(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers[name] = value
            return response

        return handler
