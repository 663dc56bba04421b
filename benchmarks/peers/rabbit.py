"""The peers' RabbitMQ side: queue counts and clean-up, for the peers that run on it.

Celery and Dramatiq both support RabbitMQ (Celery's default broker; Dramatiq's
``RabbitmqBroker``), so ``--broker amqp://...`` compares hurtle with them there.
A peer's run declares queues named after the run's namespace; their counts
come from a passive ``queue.declare`` (messages ready; a message delivered and
not yet acknowledged is counted once its consumer has gone, when RabbitMQ
gives it back), and they are deleted after the run. py-amqp is the client
(Celery's own, through kombu).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import amqp  # type: ignore[import-untyped]

#: The peers that run on RabbitMQ.
PEERS = ("celery", "dramatiq")
SCHEMES = ("amqp://", "amqps://")


def is_amqp(url: str) -> bool:
    return url.startswith(SCHEMES)


@contextmanager
def channel(url: str) -> Iterator[amqp.Channel]:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
        virtual_host=vhost, connect_timeout=5,
    )
    connection.connect()
    try:
        yield connection.channel()
    finally:
        connection.close()


def ready(url: str, queues: Sequence[str]) -> int:
    """Messages in ``queues`` (a queue that does not exist holds none)."""
    total = 0
    with channel(url) as chan:
        for name in queues:
            try:
                total += chan.queue_declare(name, passive=True).message_count
            except amqp.exceptions.NotFound:
                chan = chan.connection.channel()  # a failed passive declare closes the channel
    return total


def delete(url: str, queues: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    """Delete what a run declared, whether or not it exists."""
    with channel(url) as chan:
        for name in queues:
            chan.queue_delete(name)
        for name in exchanges:
            chan.exchange_delete(name)


def check_reachable(url: str) -> str | None:
    """Why no RabbitMQ answers at ``url``, or None."""
    try:
        with channel(url):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
