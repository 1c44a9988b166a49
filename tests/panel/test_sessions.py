"""Session store lifetimes, bounds and CSRF comparison, with a fake clock."""

from __future__ import annotations

from byollm.panel.sessions import IDLE_SECONDS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_sessions_expire_and_touching_keeps_them() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session = store.sign_in(None, token="byo_x", principal_uid="u1")
    clock.now += IDLE_SECONDS - 1
    assert store.get(session.sid) is session
    clock.now += IDLE_SECONDS - 1
    assert store.get(session.sid) is session
    clock.now += IDLE_SECONDS + 1
    assert store.get(session.sid) is None


def test_the_store_is_bounded_per_address_and_in_all() -> None:
    store = SessionStore(max_sessions=5, max_per_address=2)
    mine = [store.sign_in(None, token="byo_a", principal_uid="u1", address="10.0.0.1") for _ in range(3)]
    assert store.get(mine[0].sid) is None  # the address's oldest made room
    assert store.get(mine[1].sid) is not None and store.get(mine[2].sid) is not None
    other = store.sign_in(None, token="byo_b", principal_uid="u2", address="10.0.0.2")
    for i in range(10):
        store.get(other.sid)  # in use: kept while others are added
        store.sign_in(None, token="byo_c", principal_uid="u3", address=f"10.1.0.{i}")
    assert len(store) == 5 and store.get(other.sid) is other


def test_sign_in_replaces_the_session_and_its_csrf_token() -> None:
    store = SessionStore()
    old = store.sign_in(None, token="byo_first", principal_uid="u1")
    new = store.sign_in(old, token="byo_secret", principal_uid="u1")
    assert new.sid != old.sid and new.csrf != old.csrf
    assert store.get(old.sid) is None
    assert new.csrf_ok(new.csrf) and not new.csrf_ok(old.csrf) and not new.csrf_ok("") and not new.csrf_ok(None)
    assert "byo_secret" not in repr(new)


def test_the_sign_in_form_token_is_bound_to_its_cookie_without_a_session() -> None:
    store = SessionStore()
    nonce = store.new_signin_nonce()
    token = store.sign_in_csrf(nonce)
    assert store.sign_in_csrf_ok(nonce, token)
    assert not store.sign_in_csrf_ok(store.new_signin_nonce(), token)
    assert not store.sign_in_csrf_ok(nonce, "") and not store.sign_in_csrf_ok(None, token)
    assert not SessionStore().sign_in_csrf_ok(nonce, token)  # another process's key
    assert len(store) == 0
