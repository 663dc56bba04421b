"""The demo app: the tasks ``hurtle demo`` sends, run by a real ``hurtle worker``.

Read it as a model for your own ``tasks.py``: sync functions run in the worker's
thread pool, ``async def`` ones on its event loop, and each task says how often
and how soon it is retried. The worker imports it as ``hurtle.demo.tasks:app``.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import hurtle

QUEUE = "demo"
RETRY_DELAY = 0.05  # seconds: short, so the demo's retries don't dominate its run time
CHARGE_RETRIES = 2  # charge_card is tried 1 + this many times before it is dead-lettered
UNKNOWN_TASK = "hurtle.demo.tasks.export_legacy"  # sent by name; no function has this name

# The demo queue, not "default": a demo pointed at your own broker with --broker
# only ever touches its own messages. The broker is named here so that importing
# this module (every `hurtle` command does) never reads $HURTLE_BROKER; `hurtle
# demo` and the worker it starts point the app at the demo's broker.
app = hurtle.App("memory://hurtle-demo", default_queue=QUEUE)


@app.task
def hash_password(user_id: int, rounds: int) -> str:
    """CPU-bound, sync: PBKDF2 costs a few milliseconds of CPU per call."""
    salt = user_id.to_bytes(8, "big")
    return hashlib.pbkdf2_hmac("sha256", b"correct horse battery staple", salt, rounds).hex()[:16]


@app.task
async def fetch_profile(user_id: int, latency_ms: int) -> dict[str, int]:
    """I/O-bound, async: waits on a (simulated) remote service without holding a thread."""
    await asyncio.sleep(latency_ms / 1000)
    return {"user_id": user_id, "followers": user_id * 7 % 1000}


@app.task(retries=3, backoff=hurtle.Constant(RETRY_DELAY))
async def sync_crm(user_id: int, scratch: str) -> str:
    """Fails on its first attempt and succeeds on the retry, like a flaky API.

    A task cannot see its attempt number, so the first attempt leaves a marker
    file under ``scratch`` (made atomically: attempts may run in different
    processes) and a later attempt finds it.
    """
    marker = Path(scratch) / f"sync_crm-{user_id}"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        await asyncio.sleep(0.005)
        return f"crm:{user_id}"
    raise ConnectionResetError("CRM API reset the connection")


@app.task(retries=CHARGE_RETRIES, backoff=hurtle.Constant(RETRY_DELAY))
def charge_card(user_id: int) -> None:
    """Fails on every attempt: after its retries it is dead-lettered with the traceback."""
    raise ValueError("card declined: insufficient funds")
