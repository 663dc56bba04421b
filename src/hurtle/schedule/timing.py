"""When a schedule's ticks fall: ``Schedule`` and the ticks due at a moment.

Ticks are unix milliseconds, the same on every machine: a cron expression's are
read in the schedule's time zone (``zoneinfo``) by croniter; ``every=N`` ticks
fall on the multiples of N seconds since the epoch, not N seconds after some
worker started, so every worker computes the same ones. Across a daylight
saving change croniter moves a time that does not exist (02:30 on the day
clocks go forward) to the first one that does (03:00), and runs a time that
happens twice (02:30 on the day they go back) twice, an hour apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hurtle.errors import ConfigurationError

CatchUp = Literal["skip", "all"]
#: With ``catch_up="all"``: the most ticks one pass enqueues for a schedule after
#: an outage (the latest ones); older missed ticks are dropped, with a warning.
MAX_CATCH_UP = 100


@dataclass(frozen=True)
class Schedule:
    """A task sent at each tick of a cron expression or a fixed interval."""

    name: str
    task: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "skip"

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(f"a schedule's name must be a non-empty string, not {self.name!r}")
        check_when(f"schedule {self.name!r}", self.cron, self.every, self.tz, self.catch_up)

    def describe(self) -> str:
        """How the schedule reads in a listing: ``cron */5 * * * * (Europe/Berlin)``, ``every 30s``."""
        if self.every is not None:
            return f"every {self.every:g}s"
        return f"cron {self.cron} ({self.tz})"

    def next_tick(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (unix milliseconds)."""
        if self.every is not None:
            step = round(self.every * 1000)
            return (after_ms // step + 1) * step
        start = datetime.fromtimestamp(after_ms / 1000, zone(self.tz))
        return _ms(_croniter()(self.cron, start).get_next(datetime))

    def previous_tick(self, at_ms: int) -> int:
        """The last tick at or before ``at_ms``."""
        if self.every is not None:
            step = round(self.every * 1000)
            return at_ms // step * step
        start = datetime.fromtimestamp(at_ms / 1000, zone(self.tz))
        # croniter's get_prev is strictly before its start: step from the next tick back.
        after = _croniter()(self.cron, start).get_next(datetime)
        return _ms(_croniter()(self.cron, after).get_prev(datetime))

    def due(self, done_ms: int, now_ms: int) -> list[int]:
        """The ticks to enqueue now, oldest first, when every tick up to ``done_ms``
        is done: none before the next tick; else the latest one alone ("skip"),
        or each one missed, at most ``MAX_CATCH_UP`` of the latest ("all")."""
        limit = 1 if self.catch_up == "skip" else MAX_CATCH_UP
        ticks: list[int] = []
        tick = self.previous_tick(now_ms)
        while tick > done_ms and len(ticks) < limit:
            ticks.append(tick)
            tick = self.previous_tick(tick - 1)
        ticks.reverse()
        return ticks

    def missed(self, done_ms: int, now_ms: int) -> bool:
        """Whether more ticks fell after ``done_ms`` than ``due`` enqueues."""
        due = self.due(done_ms, now_ms)
        return bool(due) and self.next_tick(done_ms) < due[0]


def check_when(what: str, cron: str | None, every: float | None, tz: str, catch_up: str) -> None:
    """Raise ``ConfigurationError`` for a schedule's timing that cannot work, naming ``what``."""
    if (cron is None) == (every is None):
        raise ConfigurationError(f"{what}: give a cron expression or every=, one of them")
    if cron is not None and (not isinstance(cron, str) or not _croniter().is_valid(cron)):
        raise ConfigurationError(f"{what}: {cron!r} is not a cron expression")
    if every is not None:
        valid = isinstance(every, (int, float)) and not isinstance(every, bool) and math.isfinite(every)
        if not valid or round(every * 1000) < 1:
            raise ConfigurationError(f"{what}: every= must be a number of seconds >= 0.001, not {every!r}")
    if catch_up not in ("skip", "all"):
        raise ConfigurationError(f"{what}: catch_up must be 'skip' or 'all', not {catch_up!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigurationError(f"{what}: unknown time zone {tz!r}") from None


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (checked when the schedule was made)."""
    return ZoneInfo(name)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def iso(tick_ms: int) -> str:
    """A tick as UTC ISO 8601 text, to the millisecond."""
    return datetime.fromtimestamp(tick_ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def _croniter() -> Any:  # croniter's class; the package has no types
    """croniter, imported on first use: its import runs ``file`` on the Python binary
    (``platform.architecture``, to learn whether it is 32-bit), a process started in
    every hurtle command and worker that imported it, cron schedules or not."""
    from croniter import croniter

    return croniter
