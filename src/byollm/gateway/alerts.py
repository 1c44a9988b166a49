"""Failure alerts: a team's BYOLLM failures posted to the webhook its admin registered.

Why here and not in a log: a broken trust policy or a missing OIDC provider quietly moves a team onto the
paid direct API (or fails its runs), and the people who can fix it are admins who are not watching the
gateway. So the gateway posts each such failure, as Slack-compatible JSON (``{"text": ...}``), to the URL in
the team's ``alert_webhook_url`` setting, with the remediation sentence of its class.

Rules:

- Only failures of the team's own cloud set-up on a Bedrock route alert (``ALERT_CLASSES``); a throttled or
  unavailable direct provider is the operator's business, not the team's.
- At most one post per (team, class) per ``alert_interval_seconds``, counted in this process: a replica
  fleet sends at most one per replica per interval, which is still quiet and needs no shared state on the
  hot path.
- The text is built from identifiers only (team, class, route, run id) and the taxonomy's remediation; the
  failure's detail is left out, so no upstream wording and never a credential reaches a chat channel.
- The URL is an admin-chosen destination, so the post goes through the egress-guarded session, exactly as a
  team's Bedrock endpoint does (``byollm.netguard``); a refused or failed post is logged by class name only.
- Posting never blocks or fails a request: it runs as a background task with a short timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.executor import InferenceContext
from byollm.policy.types import Host, TeamPolicy
from byollm.providers.http import HttpPool

__all__ = ["ALERT_CLASSES", "WebhookAlerts", "alert_text"]

log = logging.getLogger("byollm.alerts")

ALERT_CLASSES = frozenset({
    ErrorClass.ROLE_ASSUMPTION_FAILED,
    ErrorClass.OIDC_PROVIDER_MISSING,
    ErrorClass.ISSUER_UNREACHABLE,
    ErrorClass.INSUFFICIENT_PERMISSIONS,
    ErrorClass.QUOTA_EXCEEDED,
    ErrorClass.REGION_MODEL_MISMATCH,
})
POST_TIMEOUT_S = 10.0


def alert_text(team_uid: str, error_class: ErrorClass, route: str, run_uid: str | None) -> str:
    """The message a person reads in the channel: what failed, where, and what to do."""
    where = f"cloud run {run_uid}" if run_uid else "a member's request"
    return (f"byollm: BYOLLM failure in team {team_uid}: {error_class.title} ({error_class.code}) on route"
            f" {route}, for {where}. Fix: {error_class.remediation}")


class WebhookAlerts:
    """The gateway's ``FailureAlerts``: rate-limited posts to each team's webhook."""

    def __init__(self, pool: HttpPool, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def failed(self, context: InferenceContext, policy: TeamPolicy, route: str, error: ByollmError) -> None:
        url = policy.settings.alert_webhook_url
        error_class = error.error_class
        if not url or error_class not in ALERT_CLASSES or not route.startswith(f"{Host.BEDROCK.value}:"):
            return
        key = (context.team_uid, error_class.code)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < policy.settings.alert_interval_seconds:
            return
        self._last[key] = now
        text = alert_text(context.team_uid, error_class, route, context.run_uid)
        task = asyncio.create_task(self._post(url, text), name="byollm-alert")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, text: str) -> None:
        try:
            async with self._pool.guarded_session.post(
                url, json={"text": text}, timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S),
                allow_redirects=False,
            ) as response:
                if response.status >= 400:
                    log.warning("alert webhook answered HTTP %d", response.status)
        except (ByollmError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert webhook post failed (%s)", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the posts under way (a clean shutdown, and tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
