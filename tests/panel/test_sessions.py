"""Session store lifetimes and CSRF comparison, with a fake clock."""

from __future__ import annotations

from byollm.panel.sessions import ANONYMOUS_SECONDS, IDLE_SECONDS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_sessions_expire_and_touching_keeps_them() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session = store.sign_in(store.new(), token="byo_x", principal_uid="u1")
    clock.now += IDLE_SECONDS - 1
    assert store.get(session.sid) is session
    clock.now += IDLE_SECONDS - 1
    assert store.get(session.sid) is session
    clock.now += IDLE_SECONDS + 1
    assert store.get(session.sid) is None


def test_anonymous_sessions_are_short_and_the_store_is_bounded() -> None:
    clock = Clock()
    store = SessionStore(clock=clock, max_sessions=3)
    first = store.new()
    for _ in range(3):
        store.new()
    assert len(store) == 3 and store.get(first.sid) is None
    other = store.new()
    clock.now += ANONYMOUS_SECONDS + 1
    assert store.get(other.sid) is None


def test_sign_in_replaces_the_session_and_its_csrf_token() -> None:
    store = SessionStore()
    old = store.new()
    new = store.sign_in(old, token="byo_secret", principal_uid="u1")
    assert new.sid != old.sid and new.csrf != old.csrf
    assert store.get(old.sid) is None
    assert new.csrf_ok(new.csrf) and not new.csrf_ok(old.csrf) and not new.csrf_ok("") and not new.csrf_ok(None)
    assert "byo_secret" not in repr(new)
