"""Environment variables, URLs and defaults, in one place."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit

ENV_BROKER = "HURTLE_BROKER"
ENV_RESULTS = "HURTLE_RESULTS"
ENV_APP = "HURTLE_APP"  # MODULE[:ATTR] for the commands that read a broker (-A/--app)

DEFAULT_BROKER_URL = "sqlite:///hurtle.db"
DEFAULT_QUEUE = "default"

VISIBILITY_TIMEOUT = 30.0  # seconds a lease lasts without a heartbeat
RESULT_TTL = 24 * 3600.0  # seconds a result is kept, as Celery's result_expires
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


_SECRET_PARAMS = frozenset({"password", "passwd", "pass"})


def display_url(url: str) -> str:
    """The URL fit to print: passwords masked, a SQLite path made absolute (a
    relative one is relative to the current directory, which a reader can't see)."""
    head, mark, query = url.partition("?")
    if head.startswith("sqlite:///"):
        head = f"sqlite:///{os.path.abspath(head[len('sqlite:///') :])}"
    password = urlsplit(head).password
    if password is not None:
        head = head.replace(f":{password}@", ":***@", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
        query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return head + mark + query
