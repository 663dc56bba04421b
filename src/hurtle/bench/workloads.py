"""hurtle's workloads by name, each a module of ``hurtle.bench`` with ``run()``, and what each sets.

Public, so the comparison with other task queues (``benchmarks/peers`` in a
checkout) runs hurtle's side through the very code ``hurtle bench`` runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options

WORKLOADS = ("noop", "latency", "heavyinit", "ping", "io", "chord", "cpu")
DEFAULT_KIND = {"latency": "async"}  # else sync
Workload = Callable[[Options, OnProgress | None], RunResult]


def load(name: str) -> Workload:
    """``hurtle.bench.<name>.run``. Imported only when asked: a workload module makes its App
    at import, which every other hurtle command should not pay for."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}")
    run: Workload = importlib.import_module(f"hurtle.bench.{name}").run
    return run


def describe(name: str, options: Options) -> str | None:
    """What a workload sets on the worker, for the header."""
    if name == "latency":
        from hurtle.bench import latency

        counts = ", ".join(
            f"{k:,} x {seconds * options.scale:g} s"
            for (seconds, _), k in zip(latency.DISTRIBUTION, latency.counts(options.n), strict=True)
        )
        return f"sleeps: {counts}; worker {' '.join(latency.worker_args(options))} per process"
    if name == "heavyinit":
        from hurtle.bench import heavyinit

        where = ("in an on_preload hook, once, before fork" if options.preload
                 else "lazily, on first use in each process")
        return f"setup: {heavyinit.SETUP_CPU_S * 1000:.0f} ms of CPU, {where}"
    if name == "io":
        from hurtle.bench import io_target

        return io_target.describe(options.io, options.io_redis)
    if name == "chord":
        from hurtle.bench import chord

        return chord.describe()
    if name == "cpu":
        from hurtle.bench import cpu

        return f"each task a busy loop of {cpu.BUSY_S * 1000:g} ms"
    if name == "ping":
        from hurtle.bench import ping

        return (f"one task every {ping.INTERVAL_S * 1000:g} ms to a running worker (light load);"
                " memory read once it answered a warm-up task, idle")
    return None
