"""Broker lookup by URL scheme: ``from_url(url) -> Broker``."""

from __future__ import annotations

import sys

from hurtle.brokers.base import Broker, DeadLetter, Delivery, Location, Message, QueueStats, Requeued
from hurtle.errors import ConfigurationError
from hurtle.urls import SecretURL

__all__ = [
    "Broker", "DeadLetter", "Delivery", "Location", "Message", "QueueStats", "Requeued", "broker_class",
    "from_url",
]


def from_url(url: str | SecretURL, *, visibility_timeout: float = 30.0) -> Broker:
    """Make the broker a URL names; raise ``ConfigurationError`` for a bad one
    (whose message shows the URL without its password)."""
    return broker_class(url)(url, visibility_timeout=visibility_timeout)


def broker_class(url: str | SecretURL) -> type[Broker]:
    """The class of the broker a URL names (what it declares, without making one).

    Imports are local so a broker's client library is only needed when used.
    """
    url = SecretURL(url)
    scheme = url.scheme
    if scheme == "sqlite":
        from hurtle.brokers.sqlite import SQLiteBroker

        return SQLiteBroker
    if scheme == "memory":
        from hurtle.brokers.memory import MemoryBroker

        return MemoryBroker
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        try:
            from hurtle.brokers.redis import RedisBroker
            from hurtle.brokers.redis_cluster import RedisClusterBroker
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] != "redis":
                raise
            raise ConfigurationError(
                f"broker URL {str(url)!r} needs the redis package: pip install 'hurtle[redis]'"
            ) from None

        return RedisClusterBroker if scheme in RedisClusterBroker.schemes else RedisBroker
    if scheme in ("amqp", "amqps"):
        try:
            from hurtle.brokers.amqp import AMQPBroker
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in ("aio_pika", "aiormq", "pamqp"):
                raise
            if sys.version_info < (3, 11):  # where the amqp extra installs nothing
                raise ConfigurationError(
                    f"broker URL {str(url)!r}: the RabbitMQ broker needs Python 3.11 or later (aiormq 7.2)"
                ) from None
            raise ConfigurationError(
                f"broker URL {str(url)!r} needs the aiormq package: pip install 'hurtle[amqp]'"
            ) from None

        return AMQPBroker
    known = (
        "sqlite:///path.db, memory://, redis://host:6379/0, rediss://..., unix:///path.sock,"
        " redis+cluster://host:6379, rediss+cluster://...,"
        " amqp://user:password@host:5672/vhost, amqps://..."
    )
    raise ConfigurationError(f"unknown broker URL {str(url)!r}: hurtle knows {known}")
