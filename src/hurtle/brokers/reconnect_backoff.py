"""One broker connection's reconnect attempts, inside a broker call: back off
between them, and say in the log once when an outage begins and once when it
ends (not once per attempt). The call gives up after its URL's
``reconnect_timeout``; how long a worker then keeps trying is its own
``BrokerOutage`` (``worker/broker_outage.py``)."""

from __future__ import annotations

import logging
import time

from hurtle.retry import Exponential

_BACKOFF = Exponential(base=0.05, factor=2.0, cap=2.0)  # seconds between reconnect attempts


class ReconnectBackoff:
    """``failed`` after each failed attempt, ``recovered`` after each success."""

    def __init__(self, server: str, where: str, log: logging.Logger) -> None:
        self.server = server  # "Redis", "RabbitMQ"
        self.where = where  # host:port, for the log
        self.log = log
        self.failures = 0  # failed attempts since the outage began
        self._since: float | None = None  # monotonic: when calls began to fail
        self._logged = False  # the outage was logged (so its end is logged too)
        self._was_up = False  # a call succeeded once: a failure now is a lost connection

    def next_pause(self) -> float:
        """Seconds to wait before the next attempt."""
        return _BACKOFF.compute(self.failures + 1)

    def failed(self, exc: Exception, retrying: bool) -> None:
        """Note a failed attempt. A first connection that fails without a retry
        is only raised, not logged (it becomes a one-line error at the CLI)."""
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
        if self._logged or not (self._was_up or retrying):
            return
        self._logged = True
        what = "lost the connection to" if self._was_up else "cannot reach"
        self.log.warning(
            "%s %s at %s (%s: %s); reconnecting with backoff",
            what, self.server, self.where, type(exc).__name__, exc,
        )

    def recovered(self) -> None:
        if self._logged and self._since is not None:
            self.log.warning(
                "reconnected to %s at %s after %.1fs (%d failed attempts)",
                self.server, self.where, time.monotonic() - self._since, self.failures,
            )
        self._since, self.failures, self._logged, self._was_up = None, 0, False, True
