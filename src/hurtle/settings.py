"""Environment variables, URLs and defaults, in one place."""

from __future__ import annotations

import os

from hurtle.urls import display_url as display_url  # its first home: still importable from here

ENV_BROKER = "HURTLE_BROKER"
ENV_RESULTS = "HURTLE_RESULTS"
ENV_APP = "HURTLE_APP"  # MODULE[:ATTR] for the commands that read a broker (-A/--app)

DEFAULT_BROKER_URL = "sqlite:///hurtle.db"
DEFAULT_QUEUE = "default"

VISIBILITY_TIMEOUT = 30.0  # seconds a lease lasts without a heartbeat
RESULT_TTL = 24 * 3600.0  # seconds a result is kept, as Celery's result_expires
#: Seconds the task history (per task and minute: outcomes, run time, queue wait) is
#: kept: 8 hours, a working day's charts. 0 writes no history.
HISTORY_TTL = 8 * 3600.0
MAX_DELIVERIES = 10  # past this a message is dead-lettered, never run again
MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_RETRIES = 3
#: Exceptions that mean the code is wrong, not the world: retrying cannot help,
#: so by default they fail a task at once (``@app.task(no_retry_on=())`` retries them).
NO_RETRY_ON: tuple[type[BaseException], ...] = (
    TypeError, NameError, AttributeError, ImportError, SyntaxError, NotImplementedError,
)


def broker_url_from_env(explicit: str | None) -> str:
    return explicit or os.environ.get(ENV_BROKER) or DEFAULT_BROKER_URL


def results_url_from_env(explicit: str | None) -> str | None:
    return explicit or os.environ.get(ENV_RESULTS) or None
