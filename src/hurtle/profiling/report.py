"""A profile read back as figures: where a task's time goes, function by function.

Everything here is a pure function of a ``Profile`` (``hurtle.profiling.record``),
so ``hurtle profile show``, its ``--json`` and the dashboard read the same numbers.

Folding: frames of hurtle itself and of the asyncio and threading plumbing (stored
with a leading ``~``) are taken out of every stack unless every frame is asked for;
the frames left keep their order, and a stack with nothing left is credited to the
task's own function, so the shares still add up to the time seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hurtle.profiling.fold import fold as fold_stacks
from hurtle.profiling.record import PLUMBING, Frame, Profile

Stacks = Mapping[tuple[str, ...], int]
SortBy = Literal["total", "self"]

#: How a caller is named when the function is the root of its stacks: the worker called it.
ENTRY = "(task entry)"


def fold(profile: Profile, *, all_frames: bool = False) -> dict[tuple[str, ...], int]:
    """The profile's stacks as views show them (``hurtle.profiling.fold``)."""
    return fold_stacks(profile.stacks, all_frames)


def seen_us(profile: Profile) -> int:
    """The time the shares are of: what the sampler credited to the task."""
    return profile.seen_us or sum(profile.stacks.values())


def per_execution_ms(us: int, executions: int) -> float:
    return us / max(executions, 1) / 1000.0


def share(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


@dataclass(frozen=True)
class FunctionTime:
    """One function's time: ``total_us`` in stacks where it appears (once per stack,
    however deep it recurses), ``self_us`` where it is the innermost frame."""

    label: str
    total_us: int
    self_us: int
    executions_seen: int
    #: The shallowest it was seen at, the task's own function being 0.
    depth: int = 0

    @property
    def frame(self) -> Frame:
        return Frame.parse(self.label)


def function_times(stacks: Stacks, executions_seen: Mapping[str, int]) -> list[FunctionTime]:
    """Total and self time of every function in ``stacks``, most total first."""
    totals: dict[str, int] = defaultdict(int)
    selves: dict[str, int] = defaultdict(int)
    depths: dict[str, int] = {}
    for stack, us in stacks.items():
        for depth, label in enumerate(stack):
            depths[label] = min(depth, depths.get(label, depth))
        for label in set(stack):
            totals[label] += us
        selves[stack[-1]] += us
    times = [
        FunctionTime(label, us, selves[label], executions_seen.get(label, 0), depths[label])
        for label, us in totals.items()
    ]
    return ranked(times, "total")


def ranked(times: Iterable[FunctionTime], by: SortBy) -> list[FunctionTime]:
    """Most time first by ``by``. Ties put a caller before what it calls (a chain of
    equal totals reads as the call chain), then go by name, so the order is the
    same on every run."""
    if by == "self":
        return sorted(times, key=lambda t: (-t.self_us, -t.total_us, t.depth, t.label))
    return sorted(times, key=lambda t: (-t.total_us, t.depth, -t.self_us, t.label))


@dataclass(frozen=True)
class LineTime:
    """Time seen with the task's own innermost line at ``path:line``."""

    path: str
    line: int
    us: int


def hot_lines(profile: Profile, limit: int) -> list[LineTime]:
    """The task's own lines where most time was seen: its slowest lines."""
    times = []
    for where, us in profile.lines.items():
        path, _, line = where.rpartition(":")
        times.append(LineTime(path or where, int(line) if line.isdigit() else 0, us))
    return sorted(times, key=lambda t: (-t.us, t.path, t.line))[:limit]


def matching_functions(stacks: Stacks, query: str) -> list[str]:
    """The labels ``query`` names: a whole ``qualname (path:line)`` label, else the
    functions whose qualname is ``query``, else those whose qualname ends with
    ``.query``. More than one means the query is ambiguous."""
    labels = sorted({label for stack in stacks for label in stack})
    query = query.strip()
    exact = [label for label in labels if label.removeprefix(PLUMBING) == query.removeprefix(PLUMBING)]
    if exact:
        return exact
    names = {label: Frame.parse(label).name for label in labels}
    by_name = [label for label in labels if names[label] == query]
    if by_name:
        return by_name
    return [label for label in labels if names[label].endswith("." + query)]


@dataclass(frozen=True)
class CallerTime:
    """The time of a function's stacks in which ``label`` is the frame right above
    it (its caller); ``label`` is ``ENTRY`` where nothing called it but the worker."""

    label: str
    us: int


def callers(stacks: Stacks, function: str) -> list[CallerTime]:
    """Who calls ``function`` and how much of its total each accounts for, as
    pstats' ``print_callers``. A recursive function is counted once per stack, at
    its outermost call, so the callers' times add up to the function's total."""
    times: dict[str, int] = defaultdict(int)
    for stack, us in stacks.items():
        if function in stack:
            depth = stack.index(function)
            times[stack[depth - 1] if depth > 0 else ENTRY] += us
    by_time = sorted(times.items(), key=lambda item: (-item[1], item[0]))
    return [CallerTime(label, us) for label, us in by_time]


@dataclass(frozen=True)
class Timing:
    """Per execution, in milliseconds: wall time, and how much of it was on a CPU."""

    executions: int
    async_executions: int
    sync_executions: int
    wall_ms: float
    cpu_ms: float
    waiting_ms: float

    @property
    def cpu_share(self) -> float:
        return self.cpu_ms / self.wall_ms if self.wall_ms > 0 else 0.0

    @property
    def waiting_share(self) -> float:
        return self.waiting_ms / self.wall_ms if self.wall_ms > 0 else 0.0


def timing(profile: Profile) -> Timing:
    n = profile.executions
    # CPU time measured by one clock and wall time by another can disagree by a little:
    # CPU is capped at wall so the two shares stay within 100%.
    cpu_us = min(profile.cpu_us, profile.wall_us)
    return Timing(
        n, profile.async_executions, profile.sync_executions,
        per_execution_ms(profile.wall_us, n), per_execution_ms(cpu_us, n),
        per_execution_ms(profile.waiting_us, n),
    )
