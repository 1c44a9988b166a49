"""The control service validates what it stores, so the admin API, the panel and the CLI give the same answer.

Why a table through every door: the member "email" used to be checked by the API schema only, and the panel,
which calls the service directly, stored addresses the API refused. Each value below goes through the API and
the panel form; both must refuse it naming the same field, or both accept it.
"""

from __future__ import annotations

import secrets

import pytest
from tests.panel.conftest import PanelClient

from support.admin_cast import Cast

BAD_EMAILS = [
    "not-an-email", "two@@example.com", "spaces in@example.com", "double..dot@example..com", "trailing@example.",
    "ctrl\u0007@example.com", "rtl\u202e@example.com", "a" * 250 + "@example.com", "",
]
BAD_NAMES = ["", "   ", "x" * 101, "line\nbreak", "zero\u200bwidth"]


def _members(cast: Cast) -> list[str]:
    with cast.client(cast.operator) as op:
        return [m["email"] for m in op.get(f"/teams/{cast.alpha}/members").json()]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_bad_email_is_refused_by_the_api_and_the_panel_alike(cast: Cast, panel: PanelClient, email: str) -> None:
    with cast.client(cast.admin) as admin:
        r = admin.post(f"/teams/{cast.alpha}/members", json={"email": email})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request" and "email" in r.json()["error"]["message"]
    panel.sign_in(cast.admin)
    page = panel.post(f"/admin/{cast.alpha}/members", {"email": email, "display_name": "", "role": "member"})
    assert page.status_code == 400  # the form comes back as typed, the error beside the email field
    assert email.strip() not in _members(cast) or not email.strip()
    assert 'id="err-invite-email"' in page.text


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_display_or_token_name_is_refused_everywhere(cast: Cast, panel: PanelClient, name: str) -> None:
    email = f"ok-{secrets.token_hex(3)}@example.test"
    with cast.client(cast.admin) as admin:
        if name.strip():  # an empty display name is fine (optional); an empty token name is not
            r = admin.post(f"/teams/{cast.alpha}/members", json={"email": email, "display_name": name})
            assert r.status_code == 400 and "display_name" in r.json()["error"]["message"], r.text
        r = admin.post(f"/teams/{cast.alpha}/tokens", json={"name": name})
        assert r.status_code == 400 and "name" in r.json()["error"]["message"], r.text
    panel.sign_in(cast.admin)
    before = len(_members(cast))
    if name.strip():
        panel.post(f"/admin/{cast.alpha}/members", {"email": email, "display_name": name, "role": "member"})
        assert len(_members(cast)) == before


def test_good_values_pass_every_door(cast: Cast, panel: PanelClient) -> None:
    with cast.client(cast.admin) as admin:
        r = admin.post(f"/teams/{cast.alpha}/members",
                       json={"email": f"Ana.Lopez+{secrets.token_hex(2)}@Example.co.uk", "display_name": "Ana López"})
        assert r.status_code == 201, r.text
    panel.sign_in(cast.admin)
    email = f"bo-{secrets.token_hex(3)}@example.test"
    panel.post(f"/admin/{cast.alpha}/members", {"email": email, "display_name": "Bo Ek", "role": "member"})
    assert email in _members(cast)
