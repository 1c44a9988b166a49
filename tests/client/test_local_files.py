"""The client's own files: config keys and values, the token store's backends, the credential-free history."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from byollm.client import tokenstore
from byollm.client.config import ClientConfig, ConfigError, config_path, load_config, save_config, set_value
from byollm.client.history import SafeHistory, looks_secret
from byollm.client.tokenstore import GATEWAY_TOKEN, TokenStoreError, byok_entry, open_token_store


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"),
                      ("HOME", "home")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("BYOLLM_TOKEN_STORE", "file")
    monkeypatch.delenv("BYOLLM_TOKEN", raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_round_trip_is_private_and_typed() -> None:
    config = set_value(ClientConfig(), "auto_refresh", "on")
    config = set_value(config, "gateway-url", "https://gw.example.test/")
    config = set_value(config, "proxy_port", "9000")
    path = save_config(config)
    assert path == config_path()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    loaded = load_config()
    assert loaded.auto_refresh is True
    assert loaded.gateway_url == "https://gw.example.test"
    assert loaded.proxy_port == 9000


@pytest.mark.parametrize(("key", "value", "message"), [
    ("auto_refresh", "maybe", "true or false"),
    ("proxy_port", "70000", "between 1 and 65535"),
    ("gateway_url", "gw.example.test", "http"),
    ("token", "byo_x", "unknown setting"),
])
def test_config_refuses_unknown_keys_and_bad_values(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        set_value(ClientConfig(), key, value)


def test_file_token_store_is_0600_and_says_so() -> None:
    store = open_token_store()
    assert store.kind == "file"
    store.set(GATEWAY_TOKEN, "byo_" + "t" * 43)
    store.set(byok_entry("openai"), "sk-" + "o" * 40)
    path = tokenstore.secrets_file_path()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert "0600" in store.description
    assert store.byok_keys() == {"openai": "sk-" + "o" * 40}
    assert store.delete(byok_entry("openai"))
    assert not store.delete(byok_entry("openai"))
    with pytest.raises(TokenStoreError):
        byok_entry("mistral")
    with pytest.raises(TokenStoreError):
        store.set(GATEWAY_TOKEN, " padded ")


def test_no_keyring_backend_falls_back_to_the_file_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.delenv("BYOLLM_TOKEN_STORE")
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())  # never the machine's real keyring
    store = open_token_store()
    assert store.kind == "file"
    assert "no OS keyring backend is available" in store.description
    monkeypatch.setenv("BYOLLM_TOKEN_STORE", "keyring")
    with pytest.raises(TokenStoreError, match="no OS keyring"):
        open_token_store()


def test_env_token_overrides_without_being_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_TOKEN", "byo_" + "e" * 43)
    store = open_token_store()
    assert store.gateway_token() == "byo_" + "e" * 43
    assert not tokenstore.secrets_file_path().exists()


@pytest.mark.parametrize("line", [
    "my token is byo_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "AKIAIOSFODNN7EXAMPLE",
    "export AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexample",
    "sk-ant-api03-abcdefghijklmnop",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
])
def test_history_keeps_out_anything_that_looks_like_a_secret(line: str, tmp_path: Path) -> None:
    assert looks_secret(line)
    history = SafeHistory(tmp_path / "state" / "h")
    assert not history.add(line)
    assert history.load() == []


def test_history_keeps_ordinary_lines_privately(tmp_path: Path) -> None:
    history = SafeHistory(tmp_path / "state" / "h", known=lambda: ["hunter2-secret"])
    assert history.add("how do I paginate in SQL?")
    assert history.add("/model auto")
    assert not history.add("the password is hunter2-secret")
    assert history.load() == ["how do I paginate in SQL?", "/model auto"]
    assert _mode(tmp_path / "state" / "h") == 0o600
