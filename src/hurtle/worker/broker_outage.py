"""What the consumer does while its broker is unreachable: back off, say so, give up in time.

This is the worker's patience, counted across broker calls (``--max-disconnect``).
Within one call the broker's connection retries first (``brokers/reconnect_backoff.py``),
for its URL's ``reconnect_timeout``."""

from __future__ import annotations

import asyncio
import logging
import time

from hurtle.errors import BrokerDataError, HurtleError
from hurtle.retry import Exponential

log = logging.getLogger("hurtle.worker")

#: Seconds before the next try after n failures in a row: 0.2, 0.4, ... up to 5.
_BACKOFF = Exponential(base=0.2, factor=2.0, cap=5.0, jitter=False)


def is_outage(exc: Exception) -> bool:
    """True when ``exc`` says the broker cannot be used now: a lost connection, a
    refusal, a database that cannot be opened. False for an error in data
    (``BrokerDataError``) or in code: neither is mended by waiting for the broker."""
    if isinstance(exc, BrokerDataError):
        return False
    return isinstance(exc, (HurtleError, OSError, asyncio.TimeoutError))


class BrokerOutage:
    """Reconnect with backoff, say so in the log, and give up after a limit.

    A worker that sits alive but idle while its broker is gone helps nobody:
    past ``limit`` seconds it exits non-zero so its supervisor (systemd,
    Kubernetes) can restart it and someone notices. Only an outage counts
    (``is_outage``): an error in data is logged and tried again with the same
    backoff, and never makes the worker say its broker is unreachable.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None
        self.failures = 0
        self.errors = 0  # errors in a row that are no outage

    async def failed(self, exc: Exception) -> bool:
        """Wait before the next try; False when the outage has lasted too long."""
        if not is_outage(exc):
            self.errors += 1
            delay = _BACKOFF.compute(self.errors)
            # The traceback once per run of errors: an error in code needs it to be found.
            log.error("broker call failed, not an outage (%s: %s); retrying in %.1fs",
                      type(exc).__name__, exc, delay, exc_info=self.errors == 1)
            await asyncio.sleep(delay)
            return True
        now = time.monotonic()
        if self.since is None:
            self.since = now
        self.failures += 1
        down_for = now - self.since
        if down_for > self.limit:
            log.error("broker unreachable for %.0fs (limit %.0fs): %s; exiting", down_for, self.limit, exc)
            return False
        delay = _BACKOFF.compute(self.failures)
        log.warning("broker error (%s); retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        return True

    def ended(self) -> None:
        self.errors = 0
        if self.since is not None:
            log.warning("broker reachable again after %.1fs", time.monotonic() - self.since)
            self.since, self.failures = None, 0

