"""The same task as ``tasks.py``, with one Redis client per worker process.

Why ``on_worker_start`` and not ``on_preload``: a client holds sockets, and a
socket made before the fork would be shared by every worker process, their
commands and replies interleaving on one connection. ``on_worker_start`` runs
in each process after the fork, so each gets a pool of its own, made once and
shared by every task the process runs (its threads included: the pool hands
each thread its own connection). Never per task.
"""

from __future__ import annotations

import os

import redis

import hurtle

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEY_PREFIX = "hurtle-example:visits:"

app = hurtle.App()

client: redis.Redis | None = None


@app.on_worker_start
def connect_redis() -> redis.Redis:
    global client
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # a worker that cannot reach Redis stops at start, not at its first task
    return client


@app.task
def count_visit(page: str) -> int:
    # Outside a worker (a test, a script) no hook ran: connect on first use.
    return int((client or connect_redis()).incr(KEY_PREFIX + page))
