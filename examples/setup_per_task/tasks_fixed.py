"""The same task as ``tasks.py``, with the ORM configured once, at start-up.

Why ``on_preload`` and not ``on_worker_start``: the registry is plain Python
objects (classes and dicts, no socket, thread or open file), so it survives a
fork intact. Built once in the supervisor before it forks, every worker process
inherits it, and a worker of 8 processes pays 40 ms once instead of 8 times.
``on_worker_start`` runs after the fork, once per process: the place for what
must not cross a fork, such as a connection pool (see ``examples/pool_per_call``).
"""

from __future__ import annotations

from typing import Any

from models import Registry, configure_mappers, store_events

import hurtle

app = hurtle.App()  # the broker: $HURTLE_BROKER, else sqlite:///hurtle.db in this folder

registry: Registry | None = None


@app.on_preload
def configure_models() -> Registry:
    global registry
    registry = configure_mappers()
    return registry


@app.task
def record_events(user_id: int, events: list[dict[str, Any]]) -> int:
    # Outside a worker (a test, a script) no preload ran: configure on first use.
    return store_events(registry or configure_models(), user_id, events)
