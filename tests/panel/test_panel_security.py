"""The panel's security properties over plain HTTP (fast; no browser): sessions and cookie flags, CSRF,
admin-only pages, security headers, no CORS, and no token value in any page but its one-time issuance."""

from __future__ import annotations

import httpx

from panel.conftest import PanelClient
from support.admin_cast import Cast

PAGES = ("models", "agents", "members", "usage", "runs", "audit", "validate")


def _policy(cast: Cast) -> dict:  # type: ignore[type-arg]
    with cast.client(cast.operator) as op:
        return op.get(f"/teams/{cast.alpha}/policy").json()  # type: ignore[no-any-return]


def _cookie_header(response: httpx.Response, name: str = "byollm_panel") -> str:
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(f"{name}=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def test_sign_in_sets_an_opaque_strict_httponly_cookie_and_rotates_the_session(cast: Cast, panel: PanelClient) -> None:
    first = panel.get("/admin")
    anonymous = _cookie_header(first, "byollm_panel_signin")  # the sign-in form's CSRF cookie: no session yet
    signed = _cookie_header(panel.sign_in(cast.admin))
    for header in (anonymous, signed):
        lowered = header.lower()
        assert "httponly" in lowered
        assert "samesite=strict" in lowered
        assert "path=/admin" in lowered
        assert "secure" not in lowered  # plain http on loopback
        assert cast.admin not in header
    assert anonymous.split(";")[0] != signed.split(";")[0]  # a new session id at sign-in (no fixation)
    assert panel.get(f"/admin/{cast.alpha}/models").status_code == 200


def test_cookie_is_secure_when_the_panel_is_reached_over_https(cast: Cast) -> None:
    proxied = {"x-forwarded-proto": "https"}  # loopback is a trusted proxy in these tests (conftest)
    with httpx.Client(base_url=cast.url, headers=proxied) as http:
        first = http.get("/admin")
        header = _cookie_header(first, "byollm_panel_signin")
        assert "secure" in header.lower()
        nonce = header.split(";")[0].split("=", 1)[1]
        csrf = first.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        http.cookies.clear()  # httpx keeps Secure cookies off plain http: send it the way a browser on https would
        signed = http.post("/admin/sign-in", data={"csrf_token": csrf, "token": cast.admin},
                           headers={"cookie": f"byollm_panel_signin={nonce}"})
        assert signed.status_code == 303, signed.text
        assert "secure" in _cookie_header(signed).lower()


def test_every_panel_response_carries_the_security_headers_and_no_cors(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    origin = {"origin": "https://evil.example"}
    for path in ["/admin", *(f"/admin/{cast.alpha}/{p}" for p in PAGES), "/admin/_static/panel.css"]:
        r = panel.get(path, headers=origin)
        assert r.status_code == 200, (path, r.text[:300])
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert not any(k.lower().startswith("access-control-") for k in r.headers)
        assert "<script>" not in r.text  # no inline script: the CSP would block it anyway
    preflight = panel.http.options(f"/admin/{cast.alpha}/models", headers={
        **origin, "access-control-request-method": "POST"})
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    before = _policy(cast)
    assert before["direct_api_disabled"] is False
    form = {"direct_api_disabled": "on", "model": "claude-opus-4-7", "direct.claude-opus-4-7": "on"}
    missing = panel.http.post(f"/admin/{cast.alpha}/models/routing", data=form)
    assert missing.status_code == 403
    assert "CSRF" in missing.text and "nothing changed" in missing.text
    wrong = panel.post(f"/admin/{cast.alpha}/models/routing", form, csrf="not-the-token")
    assert wrong.status_code == 403
    other = PanelClient(cast.url)  # another session's valid token is still the wrong token
    try:
        other.sign_in(cast.admin)
        stolen = panel.post(f"/admin/{cast.alpha}/models/routing", form, csrf=other.csrf())
        assert stolen.status_code == 403
    finally:
        other.close()
    assert _policy(cast) == before
    assert panel.http.post("/admin/sign-in", data={"token": cast.admin}).status_code == 403  # sign-in too


def test_a_form_with_its_token_changes_the_policy(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    r = panel.post(f"/admin/{cast.alpha}/models/routing", {"model": "gpt-5", "direct.gpt-5": "on",
                                                           "fallback_order": "gpt-5"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/{cast.alpha}/models"
    assert _policy(cast)["fallback_order"] == ["gpt-5"]
    assert "Model routing saved." in panel.get(f"/admin/{cast.alpha}/models").text


def test_a_member_cannot_reach_admin_pages(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.member)
    picker = panel.get("/admin")
    assert "not an admin of any team" in picker.text
    for page in PAGES:
        r = panel.get(f"/admin/{cast.alpha}/{page}")
        assert r.status_code == 403
        assert "for team admins" in r.text
    before = _policy(cast)
    r = panel.post(f"/admin/{cast.alpha}/models/routing", {"direct_api_disabled": "on"})
    assert r.status_code == 403
    assert _policy(cast) == before


def test_an_admin_of_another_team_gets_not_found(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.other_admin)
    assert panel.get(f"/admin/{cast.alpha}/models").status_code == 404
    assert panel.get(f"/admin/{cast.beta}/models").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(cast: Cast, panel: PanelClient) -> None:
    r = panel.get(f"/admin/{cast.alpha}/models")
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    assert 'name="token"' in panel.get("/admin").text


def test_bad_and_agent_tokens_cannot_sign_in_and_are_not_echoed(cast: Cast, panel: PanelClient) -> None:
    bogus = "byo_" + "x" * 43
    r = panel.post("/admin/sign-in", {"token": bogus})
    assert r.status_code == 401 and "not accepted" in r.text and bogus not in r.text
    r = panel.post("/admin/sign-in", {"token": cast.agent})
    assert r.status_code == 403 and cast.agent not in r.text


def test_sign_out_ends_the_session(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    cookie = panel.http.cookies.get("byollm_panel")
    assert panel.post("/admin/sign-out", {}).status_code == 303
    replay = httpx.get(f"{cast.url}/admin/{cast.alpha}/models", cookies={"byollm_panel": cookie or ""})
    assert replay.status_code == 303


def test_a_revoked_token_loses_the_panel(cast: Cast, panel: PanelClient) -> None:
    with cast.client(cast.operator) as op:
        issued = op.post(f"/teams/{cast.alpha}/tokens", json={"name": "short", "user_uid": cast.admin_uid}).json()
        panel.sign_in(issued["token"])
        assert panel.get(f"/admin/{cast.alpha}/models").status_code == 200
        assert op.delete(f"/teams/{cast.alpha}/tokens/{issued['details']['uid']}").status_code == 204
    assert panel.get(f"/admin/{cast.alpha}/models").status_code == 303


def test_no_token_value_is_rendered_except_once_at_issuance(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    r = panel.post(f"/admin/{cast.alpha}/tokens", {"name": "ci", "subject": "self:"})
    assert r.status_code == 200
    issued = r.text.split('id="issued-token" readonly value="', 1)[1].split('"', 1)[0]
    assert issued.startswith("byo_") and len(issued) == 47
    panel.pages.clear()
    for page in PAGES:
        panel.get(f"/admin/{cast.alpha}/{page}")
    panel.get("/admin")
    secrets = [issued, cast.admin, cast.member, cast.agent, cast.operator, cast.other_admin]
    for body in panel.pages:
        assert body
        for secret in secrets:
            assert secret not in body
            assert secret[4:20] not in body  # no fragment beyond the display prefix either


def test_a_control_plane_error_is_shown_with_its_remediation(cast: Cast, panel: PanelClient) -> None:
    panel.sign_in(cast.admin)
    r = panel.post(f"/admin/{cast.alpha}/models/bedrock", {"region": "us-east-1", "role_arn": "not-an-arn"})
    assert r.status_code == 400  # the page again: what was typed, the error beside its field and how to fix it
    assert "role_arn" in r.text and "How to fix:" in r.text and 'value="not-an-arn"' in r.text
    assert 'id="err-bedrock-role_arn"' in r.text
    pasted = panel.post(f"/admin/{cast.alpha}/models/bedrock", {"region": "us-east-1", "role_arn": cast.member})
    assert pasted.status_code == 400
    assert cast.member not in pasted.text  # a pasted token is masked, in the message and in the kept value
    assert cast.member not in panel.get(f"/admin/{cast.alpha}/models").text
