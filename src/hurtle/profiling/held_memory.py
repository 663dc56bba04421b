"""Where a profiled task's memory is held: ``tracemalloc``, with ``--profile-memory``.

``tracemalloc`` traces every allocation of the process with its call stack, and
slows it down by a good deal: it is for finding a leak, not for every day. At
each write, the live blocks whose stack passes through a profiled task's own
file are grouped by the line that allocated them; what a task's tally gets is
the change since the previous write, so the sum over writes (and processes) is
what is held now.
"""

from __future__ import annotations

import inspect
import os
import tracemalloc
from typing import TYPE_CHECKING

from hurtle.profiling.frames import classify

if TYPE_CHECKING:
    from hurtle.app import App

#: Frames kept per allocation: enough to reach the task's own frame from deep
#: inside a library.
TRACE_DEPTH = 32
TOP_SITES = 20  # allocation sites kept per task and write


class HeldMemory:
    def __init__(self, app: App, tasks: frozenset[str]) -> None:
        self._files: dict[str, str] = {}  # task -> the file of its function
        for name in tasks:
            task = app.tasks.get(name)
            if task is None:
                continue
            try:
                path = inspect.getsourcefile(inspect.unwrap(task.fn))
            except TypeError:
                path = None
            if path:
                self._files[name] = os.path.abspath(path)
        self._reported: dict[str, dict[str, int]] = {}

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_DEPTH)

    def changes(self) -> dict[str, dict[str, int]]:
        """Per task, the change of bytes held per allocation site since the last call."""
        if not tracemalloc.is_tracing() or not self._files:
            return {}
        snapshot = tracemalloc.take_snapshot()
        changes: dict[str, dict[str, int]] = {}
        for task, path in self._files.items():
            mine = snapshot.filter_traces([tracemalloc.Filter(True, path, all_frames=True)])
            held: dict[str, int] = {}
            for stat in mine.statistics("lineno")[:TOP_SITES]:
                frame = stat.traceback[0]
                held[f"{classify(frame.filename)[1]}:{frame.lineno}"] = stat.size
            before = self._reported.get(task, {})
            change = {site: size - before.get(site, 0) for site, size in held.items()}
            change.update({site: -size for site, size in before.items() if site not in held})
            change = {site: size for site, size in change.items() if size}
            self._reported[task] = held
            if change:
                changes[task] = change
        return changes
