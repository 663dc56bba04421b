"""What the consumer does while its broker is unreachable: back off, say so, give up in time."""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("hurtle.worker")


class BrokerOutage:
    """Reconnect with backoff, say so in the log, and give up after a limit.

    A worker that sits alive but idle while its broker is gone helps nobody:
    past ``limit`` seconds it exits non-zero so its supervisor (systemd,
    Kubernetes) can restart it and someone notices.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None
        self.failures = 0

    async def failed(self, exc: Exception) -> bool:
        """Wait before the next try; False when the outage has lasted too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        self.failures += 1
        down_for = now - self.since
        if down_for > self.limit:
            log.error("broker unreachable for %.0fs (limit %.0fs): %s; exiting", down_for, self.limit, exc)
            return False
        delay = min(5.0, 0.1 * 2 ** min(self.failures, 10))
        log.warning("broker error (%s); retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        return True

    def ended(self) -> None:
        if self.since is not None:
            log.warning("broker reachable again after %.1fs", time.monotonic() - self.since)
            self.since, self.failures = None, 0
