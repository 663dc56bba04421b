"""Each worker process on a CPU of its own (``hurtle worker --cpu-pin``).

A process's Python runs one thread at a time: its threads hand the GIL to each
other at every system call of a ``def`` task (a Redis ``INCR`` is a ``send``
and a ``recv``), and the loop takes it back between them. Spread over the
machine's cores, each handoff wakes a thread on another core, which then
waits to be scheduled while the GIL sits free. Kept on one core, the thread
that lets go blocks and the next one runs at once, where it is. Measured on 2
cores with ``-p 2`` (docs/benchmarks.md, "Each process on a CPU of its own"):
io ``def`` tasks on Redis ran at 21,000-23,700/s pinned against 12,300-13,700/s
not, with 66-73 us of worker CPU a task instead of 104-120; no-op ``def``
tasks 19% faster, CPU-bound ones 11%; ``async def`` tasks the same.

What it costs: a process's threads never run on two cores at once, even in C
code that lets go of the GIL (numpy, hashing, compression), programs a task
starts inherit its CPU, and the kernel cannot move a process off a core that
something else keeps busy. So ``auto`` pins only when the processes fill the
CPUs evenly (as many as the CPUs, or a multiple): every core then has its share
of them anyway. ``on`` pins in turn whatever the count; ``off`` never.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("hurtle.supervisor")

CHOICES = ("auto", "on", "off")


def can_pin() -> bool:
    """Whether this platform pins processes to CPUs (Linux does; macOS does not)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def cpu_plan(choice: str, processes: int) -> list[int] | None:
    """The CPU of each process slot, in turn over the CPUs this process may use;
    None when the processes are not pinned (see the module docstring)."""
    if choice == "off" or not can_pin():
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if choice == "auto" and processes % len(cpus):
        return None
    return [cpus[slot % len(cpus)] for slot in range(processes)]


def describe(plan: list[int] | None) -> str:
    """The start-up line's account of the plan."""
    if plan is None:
        return "not pinned (--cpu-pin on pins each process to one CPU)"
    return f"each process pinned to one CPU, in turn over CPUs {cpu_list(sorted(set(plan)))}"


def cpu_list(cpus: list[int]) -> str:
    """Sorted CPU numbers as a cpuset list (``0-3,8``), as ``taskset -c`` takes them."""
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def pin(cpu: int) -> None:
    """Run this process, and every thread it starts from now on, on ``cpu`` alone.
    A CPU gone offline since the plan leaves the process where it was, with a warning."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        log.warning("could not pin this process to CPU %d (%s): it runs on any", cpu, exc)
