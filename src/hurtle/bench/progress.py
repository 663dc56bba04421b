"""The progress bar ``hurtle bench`` shows while a run drains: tasks counted by the tasks themselves.

It reads what the runners report (``OnProgress``: the records' count, every
0.1 s) and draws on stderr, so ``--json`` output on stdout stays clean; it
draws nothing when stderr is not a terminal (logs, CI, tests). Each run has a
bar of its own that is gone when the run ends (``transient``), before the
run's line is printed: the line says the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hurtle.bench.runner import OnProgress


@contextmanager
def run_progress(label: str, total: int) -> Iterator[OnProgress | None]:
    """``with run_progress("run 1/3 hurtle", n) as tick:`` a bar for one run; ``tick`` is what
    the runner calls with the count, None when there is no terminal to draw on."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("ran"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)

        def tick(done: int) -> None:
            progress.update(task, completed=done)

        yield tick
