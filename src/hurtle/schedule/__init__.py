"""Periodic tasks: ``@app.periodic`` and ``app.schedule``, run by any ``hurtle worker``.

``timing.py`` says when a schedule's ticks fall; ``ticks.py`` turns a tick into
its message and lets exactly one copy of it run; ``lease.py`` elects the one
worker that enqueues ticks; ``scheduler.py`` is that worker's loop. The
argument for "each tick runs once" is in docs/scheduling.md.
"""

from hurtle.schedule.timing import CatchUp, Schedule

__all__ = ["CatchUp", "Schedule"]
