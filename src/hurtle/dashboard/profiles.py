"""The profiles page: which tasks have a profile, and one task's folded stacks.

The stacks are those ``hurtle profile flame`` draws (``profiling.fold``: hurtle's
own frames folded away); the page draws the flame graph from them. At most
``MAX_STACKS`` stacks go out, those with the most time, and the rest is added
up as one, so the page stays small whatever a profile holds.
"""

from __future__ import annotations

from typing import Any

from hurtle.dashboard.source import Source
from hurtle.profiling import record
from hurtle.profiling.fold import fold
from hurtle.profiling.record import Frame, Profile

MAX_PROFILES = 200  # task names listed
MAX_STACKS = 2_000  # stacks sent for one flame graph
OTHER = "(other stacks)"


async def profiled(source: Source) -> dict[str, Any]:
    if source.tallies is None:
        return {"kept": False, "tasks": []}
    names = sorted(record.task_name(key) for key in await source.tallies.keys(record.PREFIX))
    return {"kept": True, "tasks": names[:MAX_PROFILES], "more": max(0, len(names) - MAX_PROFILES)}


async def flame(source: Source, task: str) -> dict[str, Any] | None:
    """The task's profile as folded stacks, root first; None when it has none."""
    fields = None if source.tallies is None else await source.tallies.read(record.key(task))
    if not fields:
        return None
    profile = Profile.from_tally(task, fields)
    ranked = sorted(fold(profile.stacks, False).items(), key=lambda pair: -pair[1])
    rest = sum(time for _, time in ranked[MAX_STACKS:])
    stacks = [[[_name(label) for label in stack], time] for stack, time in ranked[:MAX_STACKS]]
    if rest:
        stacks.append([[OTHER], rest])
    return {
        "task": task, "executions": profile.executions, "wall_us": profile.wall_us,
        "cpu_us": profile.cpu_us, "seen_us": profile.seen_us, "stacks": stacks,
    }


def _name(label: str) -> str:
    """A frame as shown: ``function (file:line)``, the file's last part only."""
    frame = Frame.parse(label)
    return f"{frame.name} ({frame.path.rsplit('/', 1)[-1]}:{frame.line})"
