"""An operator's provider key and its audit entry are written in one transaction: if the audit entry cannot
be written, the key is not stored either (no configuration change without its record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from byollm.control.bootstrap import bootstrap_operator
from byollm.policy.types import Host
from byollm.services import build_services
from byollm.settings import Settings
from byollm.store import audit as audit_repo
from support.admin_cast import TEST_KEK


async def test_a_key_whose_audit_entry_fails_is_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=TEST_KEK, run_worker_embedded=False)
    boot = await bootstrap_operator(settings, email="op@example.test")
    services = await build_services(settings, background=False)
    try:
        operator = await services.control.authenticate(boot.token)
        assert await services.control.set_provider_key(operator, "openai", "sk-first-key") == \
            {"anthropic": False, "openai": True, "google": False}

        async def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("the audit log cannot be written")

        monkeypatch.setattr(audit_repo, "append_audit", broken)
        with pytest.raises(RuntimeError):
            await services.control.set_provider_key(operator, "anthropic", "sk-ant-unrecorded")
        with pytest.raises(RuntimeError):
            await services.control.set_provider_key(operator, "openai", None)
        monkeypatch.undo()
        keys = services.operator_keys
        await keys.refresh()  # what the database holds
        assert keys.providers == frozenset({Host.OPENAI}) and keys.get(Host.OPENAI) == "sk-first-key"
    finally:
        await services.close()
