"""A task that configures the ORM on every call: the mistake, as it is usually written.

``record_events`` needs the model registry, so it asks for one, and
``configure_mappers`` builds it from scratch each time: about 40 ms of CPU
before a fraction of a millisecond of real work. A worker that forks a process
per job (RQ) can do nothing else; here it is simply the wrong place.
``tasks_fixed.py`` is the same task with the setup moved to start-up.

Run it: ``hurtle worker tasks --burst -p 2 --profile all`` in this folder, after
sending some tasks (``python measure.py`` does both, for both versions).
"""

from __future__ import annotations

from typing import Any

from models import configure_mappers, store_events

import hurtle

app = hurtle.App()  # the broker: $HURTLE_BROKER, else sqlite:///hurtle.db in this folder


@app.task
def record_events(user_id: int, events: list[dict[str, Any]]) -> int:
    registry = configure_mappers()  # the same registry, rebuilt on every call
    return store_events(registry, user_id, events)
