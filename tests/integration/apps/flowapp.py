"""The app the workflow chaos tests run under real ``hurtle worker`` processes.

The broker comes from HURTLE_BROKER; marker files go to WORKERAPP_DIR. Tasks are
no-ops but for the callback, which notes each of its runs.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import hurtle

MARKS = Path(os.environ.get("WORKERAPP_DIR", "."))

app = hurtle.App(visibility_timeout=float(os.environ.get("FLOWAPP_VISIBILITY", "2")), max_deliveries=50)


@app.task
async def member(index: int) -> int:
    return index


@app.task
async def step(count: int) -> int:
    """A chain's step: 20 ms, so a chain of 50 lasts long enough to be killed in."""
    await asyncio.sleep(0.02)
    return count + 1


@app.task
async def collect(values: list[int]) -> int:
    """Note this run: how many values came, and whether they are every member's, in order."""
    with open(MARKS / "callback", "a") as f:  # one short O_APPEND line: atomic across processes
        f.write(f"{len(values)} {values == list(range(len(values)))}\n")
    return len(values)
