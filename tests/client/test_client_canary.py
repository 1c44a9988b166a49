"""Canary scan: after a full client session, no credential or key value sits in any file the client wrote,
nor in anything it printed.

The session: ``byollm login`` (token from stdin), ``keys add`` (a canary BYOK key), ``config set``, ``ask``,
``chat`` (including a line that carries a key), the proxy serving the official SDK (its terminal lines also
go to ``proxy.log``), and ``doctor``. The values searched for: the gateway token, the BYOK key, every AWS
credential the simulator issued (key ids, secrets and session tokens) and the long-term key pair.

Where a secret may be: the token store alone. Here that is the file fallback
(``$XDG_DATA_HOME/byollm/secrets.json``, as on any machine without an OS keyring): it must hold the gateway
token and the BYOK key and nothing else secret (no AWS value), with mode 0600 in a 0700 directory. With an
OS keyring the same entries live in the keyring and no such file exists. Every other file (config,
history, logs) must hold no secret at all. AWS's own files (the config and the ``aws login`` cache that
botocore refreshes) are AWS's, outside the client's directories, and not scanned.
"""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import anthropic
import pytest
from typer.testing import CliRunner

from byollm.api.serving import ServerThread
from byollm.cli.main import app
from byollm.client.context import open_context
from byollm.client.proxy import ProxyState, _ProxyLog, build_proxy_app, new_proxy_key
from byollm.client.tokenstore import secrets_file_path
from support.client_env import make_client_env
from support.stack import Stack

BYOK_CANARY = "sk-ant-CANARY0client0byok0000000000000001"


def _aws_values(stack: Stack) -> set[str]:
    values: set[str] = set()
    for key_id, identity in stack.sim.state._session_keys.items():
        values |= {key_id, identity.secret_access_key, identity.session_token or ""}
    world = stack.sim_http.get("/_sim/world").json()
    for account in world["accounts"].values():
        for user in (account.get("users") or {}).values():
            for key in user.get("access_keys") or []:
                values |= {key["id"], key["secret"]}
    return {v for v in values if v}


def test_no_secret_in_any_file_the_client_wrote(tmp_path: Path, stack: Stack,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    team = stack.new_team(byok_allowed=True)
    env = make_client_env(tmp_path, stack, team, monkeypatch, profile="sim-process")
    runner = CliRunner()
    printed: list[str] = []

    def cli(*args: str, input: str | None = None, expect: int = 0) -> str:
        result = runner.invoke(app, list(args), input=input)
        printed.append(result.output)
        assert result.exit_code == expect, result.output
        return result.output

    cli("login", "--url", stack.url, "--token-stdin", input=team.token + "\n")
    cli("keys", "add", "anthropic", "--stdin", input=BYOK_CANARY + "\n")
    assert "anthropic  key stored" in cli("keys", "list")
    cli("config", "set", "default_model", "claude-sonnet-4-6")
    cli("config", "show")
    cli("ask", "canary question")
    chat = cli("chat", input=f"hello canary\n/nonsense {BYOK_CANARY}\nmy token {team.token}\n/usage\n/quit\n")
    assert "so it was not sent" in " ".join(chat.split())  # a pasted token never reaches the model
    cli("doctor", "--local")

    lines: list[str] = []
    with open_context() as ctx:
        key = new_proxy_key()
        state = ProxyState(stack.url, ctx.attacher, key, _ProxyLog(lines.append))
        with ServerThread(build_proxy_app(state)) as proxy:
            sdk = anthropic.Anthropic(base_url=proxy.url, auth_token=key, max_retries=0)
            for model in ("claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5"):
                # the canary BYOK key is not a real key: its failure is fine, its leak is not
                with contextlib.suppress(anthropic.APIStatusError):
                    sdk.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        printed.extend(lines)

    aws = _aws_values(stack)
    user_secrets = {team.token, BYOK_CANARY}
    assert aws, "the simulator issued credentials"
    store_file = secrets_file_path()
    assert store_file.exists()
    files = [p for d in (*env.written_dirs, tmp_path / "home") if d.exists() for p in d.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"client.json", "secrets.json", "chat_history", "proxy.log"} <= names, names
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaked_aws = [v[:4] for v in aws if v in text]
        assert not leaked_aws, f"{path} holds AWS credential values"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if path == store_file:
            assert team.token in text and BYOK_CANARY in text
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        else:
            assert not [s[:6] for s in user_secrets if s in text], f"{path} holds the token or a BYOK key"
            assert key not in text, f"{path} holds the proxy key"
    history = (tmp_path / "state" / "byollm" / "chat_history").read_text()
    assert "hello canary" in history and "/usage" in history
    output = "\n".join(printed)
    for secret in aws | user_secrets:
        assert secret not in output, "a secret was printed"
