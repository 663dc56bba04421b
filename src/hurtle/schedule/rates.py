"""What ``@app.task(rate_limit=..., max_concurrency=...)`` declares, checked when decorated.

A rate is ``"<count>/<unit>"``: ``"10/s"``, ``"100/m"``, ``"1000/h"``. It holds
for the whole deployment (every process on every machine), evenly spaced: one
start every ``period / count`` seconds, so no window of one ``period`` ever holds
more than ``count`` starts. How workers keep both limits: ``limits.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hurtle.errors import ConfigurationError

#: Seconds per unit a rate may be given in.
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

_RATE = re.compile(r"\s*([0-9]+)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts per ``period`` seconds, evenly spaced."""

    count: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.period / self.count

    def __str__(self) -> str:
        return self.text


def parse_rate(value: object) -> Rate:
    """The ``Rate`` that ``value`` ("100/m") gives; ``ConfigurationError`` saying
    what a rate looks like when it gives none."""
    found = _RATE.fullmatch(value) if isinstance(value, str) else None
    if found is None or found.group(2) not in UNITS or int(found.group(1)) <= 0:
        raise ConfigurationError(
            f"rate_limit must be '<count>/<unit>' with a count > 0 and a unit of s, m or h"
            f" (such as '10/s', '100/m', '1000/h'), not {value!r}"
        )
    count, unit = int(found.group(1)), found.group(2)
    return Rate(count, UNITS[unit], f"{count}/{unit}")


def check_max_concurrency(value: object) -> int:
    """``value`` if it is a positive int; ``ConfigurationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"max_concurrency must be an int >= 1 (runs at once across every worker), not {value!r}"
        )
    return value
