"""Backoff policies: ``compute(attempt) -> seconds`` (after redis-py's ``backoff.py``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


class Backoff(Protocol):
    """How long to wait before retry number ``attempt`` (1 for the first retry)."""

    def compute(self, attempt: int) -> float: ...


@dataclass(frozen=True)
class Constant:
    """The same delay before every retry."""

    seconds: float = 1.0

    def compute(self, attempt: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class Exponential:
    """``base * factor ** (attempt - 1)``, capped at ``cap``, with full jitter.

    Jitter spreads the retries of a batch that failed together (a database blip)
    so they don't come back as one thundering herd.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True

    def compute(self, attempt: int) -> float:
        exponent = max(0, attempt - 1)
        # Cap the exponent first: 2.0 ** 2000 overflows a float.
        delay = self.cap if exponent > 64 else min(self.cap, self.base * self.factor**exponent)
        if self.jitter:
            return random.uniform(delay / 2, delay)
        return delay


DEFAULT_BACKOFF: Backoff = Exponential()
