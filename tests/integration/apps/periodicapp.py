"""An app with one periodic task, for the scheduler's tests under real ``hurtle worker`` processes.

The broker and result store come from HURTLE_BROKER and HURTLE_RESULTS; each
run of the task appends its tick, task id, copy token and delivery count to
``ticks`` in WORKERAPP_DIR. PERIODICAPP_CATCH_UP sets the schedule's catch_up.
"""

from __future__ import annotations

import os
from pathlib import Path

import hurtle

MARKS = Path(os.environ.get("WORKERAPP_DIR", "."))

app = hurtle.App(visibility_timeout=float(os.environ.get("WORKERAPP_VISIBILITY", "30")))


@app.periodic(every=1.0, catch_up=os.environ.get("PERIODICAPP_CATCH_UP", "all"), queue="ticks")  # type: ignore[arg-type]
def beat() -> None:
    task = hurtle.current_task()
    line = f"{task.headers['hurtle-tick']} {task.id} {task.headers['hurtle-copy']} {task.deliveries}"
    with open(MARKS / "ticks", "a") as f:  # O_APPEND: one short line is atomic across processes
        f.write(line + "\n")
