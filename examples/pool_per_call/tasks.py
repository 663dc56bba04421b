"""A task that builds a Redis connection pool on every call: the mistake, as it is usually written.

``count_visit`` asks ``connect_redis`` for a client, and each call makes a new
``ConnectionPool``, so a new TCP connection, a handshake and a PING, before the
one INCR the task is for; ``close`` ends that connection on the way out. On a
loaded Redis, or one across a slow network, opening connections is what times
out, and the server sees one connection per task. ``tasks_fixed.py`` makes the
client once per worker process.

Redis is at ``$REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); the broker is
``$HURTLE_BROKER`` (default ``sqlite:///hurtle.db`` in this folder).
"""

from __future__ import annotations

import os

import redis

import hurtle

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEY_PREFIX = "hurtle-example:visits:"

app = hurtle.App()


def connect_redis() -> redis.Redis:
    """A client, with a pool of its own, checked to answer."""
    client = redis.Redis.from_url(REDIS_URL)  # from_url makes the client a new ConnectionPool
    client.ping()  # fail here, not halfway through the work, when Redis is down
    return client


@app.task
def count_visit(page: str) -> int:
    client = connect_redis()  # a new pool, so a new connection, on every call
    try:
        return int(client.incr(KEY_PREFIX + page))
    finally:
        client.close()
