"""Memory per task: how much a task's executions grow their process, and where it is held.

A profile keeps the RSS growth summed over its executions and the largest RSS seen
after one (``hurtle.profiling.record``). Growth *per execution* is what tells a leak:
a task that appends to a module-level list grows its process by about the same
amount on every call, while a normal task grows it once, on its first calls
(imports, caches, thread stacks, the allocator's arenas). Those first calls, in
each process, are left out of the growth (``profiler.WARM_UP``).

A task is *growing* when the growth was measured over at least ``MIN_EXECUTIONS``
executions and came to ``GROWING_BYTES_PER_EXECUTION`` or more each on average.
32 KiB is eight pages: above the allocator's rounding and the noise of tasks
running beside it in the same process, and a leak that size costs a gigabyte
every 30,000 calls. A one-off allocation of several megabytes after the warm-up
still reads as growing until enough executions dilute it, which is the honest
reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from hurtle.profiling.record import Profile

#: Average RSS growth per execution at and above which a task is called growing.
GROWING_BYTES_PER_EXECUTION = 32 * 1024
#: Fewer executions than this cannot tell a warm-up from a leak.
MIN_EXECUTIONS = 10


@dataclass(frozen=True)
class AllocationSite:
    """Bytes allocated at ``path:line`` during profiled executions and still held."""

    path: str
    line: int
    bytes: int


@dataclass(frozen=True)
class MemoryView:
    #: The executions RSS growth was measured over (after each process's warm-up).
    executions: int
    rss_growth: int
    rss_peak: int
    #: Top allocation sites, most bytes held first; empty without ``--profile-memory``.
    sites: list[AllocationSite]
    #: Whether any allocation site was recorded at all.
    sites_recorded: bool

    @property
    def growth_per_execution(self) -> float:
        return self.rss_growth / self.executions if self.executions else 0.0

    @property
    def enough_executions(self) -> bool:
        return self.executions >= MIN_EXECUTIONS

    @property
    def growing(self) -> bool:
        return self.enough_executions and self.growth_per_execution >= GROWING_BYTES_PER_EXECUTION


def memory_view(profile: Profile, limit: int) -> MemoryView:
    sites = []
    for where, held in profile.memory.items():
        path, _, line = where.rpartition(":")
        sites.append(AllocationSite(path or where, int(line) if line.isdigit() else 0, held))
    sites.sort(key=lambda site: (-site.bytes, site.path, site.line))
    executions, growth = profile.rss_executions, profile.rss_growth
    return MemoryView(executions, growth, profile.rss_peak, sites[:limit], bool(sites))
