"""Profiles as a worker would write them: tally fields built from readable stacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hurtle.profiling import record
from hurtle.profiling.record import Profile, frame_label

SITE = "/srv/venv/lib/python3.12/site-packages"
STDLIB = "/usr/lib/python3.12"


def frame(qualname: str, path: str = "app/tasks.py", line: int = 1, *, plumbing: bool = False) -> str:
    return frame_label(qualname, path, line, plumbing)


def hurtle_frame(qualname: str) -> str:
    return frame(qualname, f"{SITE}/hurtle/worker/executors.py", 120, plumbing=True)


def asyncio_frame(qualname: str) -> str:
    return frame(qualname, f"{STDLIB}/asyncio/tasks.py", 640, plumbing=True)


def tally_fields(
    stacks: Mapping[tuple[str, ...], int],
    *,
    executions: int,
    seen_in: Mapping[str, int] | None = None,
    wall_us: int | None = None,
    cpu_us: int | None = None,
    asynchronous: bool = False,
    rss_growth: int = 0,
    rss_executions: int | None = None,
    rss_peak: int = 50 * 2**20,
    lines: Mapping[str, int] | None = None,
    memory: Mapping[str, int] | None = None,
    last: int = 1_700_000_000,
) -> dict[str, int]:
    """The fields of a ``profile:<task>`` tally. Every frame is seen in every
    execution unless ``seen_in`` says otherwise; wall and CPU time default to the
    time seen."""
    seen = sum(stacks.values())
    fields = {
        record.EXECUTIONS: executions,
        record.ASYNC if asynchronous else record.SYNC: executions,
        record.WALL: seen if wall_us is None else wall_us,
        record.CPU: seen if cpu_us is None else cpu_us,
        record.SEEN: seen,
        record.RSS_GROWTH: rss_growth,
        record.RSS_EXECUTIONS: executions if rss_executions is None else rss_executions,
        record.RSS_PEAK: rss_peak,
        record.LAST: last,
    }
    for stack, us in stacks.items():
        key = record.STACK + record.SEPARATOR.join(stack)
        fields[key] = fields.get(key, 0) + us
    frames = {label for stack in stacks for label in stack}
    for label in frames:
        fields[record.EXECUTIONS_SEEN + label] = (seen_in or {}).get(label, executions)
    for where, us in (lines or {}).items():
        fields[record.LINE + where] = us
    for where, held in (memory or {}).items():
        fields[record.MEMORY + where] = held
    return fields


def profile_of(task: str, stacks: Mapping[tuple[str, ...], int], *, executions: int, **extra: Any) -> Profile:
    """A ``Profile`` read back from the fields a worker would have written."""
    return Profile.from_tally(task, tally_fields(stacks, executions=executions, **extra))
