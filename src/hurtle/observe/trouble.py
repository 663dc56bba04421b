"""A side duty that keeps failing, logged without flooding the log.

The registry's heartbeat, the task history and the metrics' queue samples run
beside the tasks and never stop them: when their store is down they fail every
few seconds. Each failure is logged at most once per ``WARN_EVERY`` seconds, and
the first success after them once, so an operator sees when it broke and when
it mended.
"""

from __future__ import annotations

import logging
import time

WARN_EVERY = 60.0  # seconds: a duty that keeps failing is logged once per this


class Trouble:
    """One duty's failures: ``failed`` at each, ``ok`` at each success."""

    __slots__ = ("_failing", "_warned_at", "every", "log")

    def __init__(self, log: logging.Logger, every: float = WARN_EVERY) -> None:
        self.log = log
        self.every = every
        self._warned_at = -every  # monotonic: when a failure was last logged
        self._failing = False

    def failed(self, doing: str, exc: BaseException, then: str = "") -> None:
        """Log "could not ``doing`` (Type: message)``then``", unless logged less than ``every`` ago."""
        self._failing = True
        now = time.monotonic()
        if now - self._warned_at >= self.every:
            self._warned_at = now
            self.log.warning("could not %s (%s: %s)%s", doing, type(exc).__name__, exc, then)

    def ok(self, mended: str) -> None:
        """A success: log ``mended`` if it ends a run of failures."""
        if self._failing:
            self._failing = False
            self.log.info("%s", mended)

    @property
    def failing(self) -> bool:
        return self._failing
