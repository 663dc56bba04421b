"""Sends a worker process's task figures on, every few seconds, to each place that keeps them.

The places (``FigureSink``): the task history in the broker's store, and the
supervisor's Prometheus registry. Each gets the same figures, and each keeps
what it could not send for its next turn (``task_figures.merge``), so one that
fails neither loses figures nor makes another count them twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from hurtle.observe.task_figures import FigureKey, MinuteFigures, TaskFigures

log = logging.getLogger("hurtle.worker")

WRITE_EVERY = 5.0  # seconds between a process's writes of its task figures


class FigureSink(Protocol):
    async def send(self, figures: dict[FigureKey, MinuteFigures]) -> None:
        """Send ``figures`` (shared with the other sinks: read, never change them).
        Never raises: what cannot be sent now is kept and sent with the next figures."""

    async def close(self) -> None:
        """Send what is kept, one last try; release what the sink holds."""


class FigureWriter:
    """Takes ``figures`` every ``every`` seconds and hands them to each sink."""

    def __init__(self, figures: TaskFigures, sinks: Sequence[FigureSink], every: float = WRITE_EVERY) -> None:
        self.figures = figures
        self.sinks = list(sinks)
        self.every = every

    async def write(self) -> None:
        """Send what gathered since the last write."""
        taken = self.figures.take()
        if not taken:
            return
        for sink in self.sinks:
            try:
                await sink.send(taken)
            except Exception:  # a sink's own defect: log it, the tasks run on
                log.exception("could not send task figures to %r", sink)

    async def keep_writing(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.write()

    async def close(self) -> None:
        """The last figures, then each sink's close: at a clean stop nothing counted is lost."""
        await self.write()
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:
                log.exception("could not close %r", sink)
