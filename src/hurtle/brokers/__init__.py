"""Broker lookup by URL scheme: ``from_url(url) -> Broker``."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import TypeVar

from hurtle.brokers.base import Broker, DeadLetter, Delivery, Location, Message, QueueStats, Requeued
from hurtle.errors import ConfigurationError
from hurtle.urls import SecretURL

S = TypeVar("S")

__all__ = [
    "BROKERS", "Broker", "DeadLetter", "Delivery", "Location", "Message", "QueueStats", "Registered",
    "Requeued", "broker_class", "from_url", "keeping_broker",
]


@dataclasses.dataclass(frozen=True)
class Registered:
    """A broker class by module and name, imported only once a URL uses one of its schemes,
    so a broker's client library is needed only by those who use that broker."""

    module: str
    name: str
    #: The schemes the class serves: its own ``schemes``, written here so that looking one
    #: up imports nothing (a test checks the two agree).
    schemes: tuple[str, ...]
    #: The top-level packages of the client library it needs ...
    needs: tuple[str, ...] = ()
    #: ... and what to install when one is missing.
    install: str = ""

    def load(self, url: SecretURL) -> type[Broker]:
        """Import the class; a missing client library is a ``ConfigurationError`` saying what to install."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in self.needs:
                raise
            if self.needs == _AMQP and sys.version_info < (3, 11):  # where the amqp extra installs nothing
                raise ConfigurationError(
                    f"broker URL {str(url)!r}: the RabbitMQ broker needs Python 3.11 or later (aiormq 7.2)"
                ) from None
            raise ConfigurationError(f"broker URL {str(url)!r} needs {self.install}") from None
        cls: type[Broker] = getattr(module, self.name)
        return cls


_REDIS = ("redis",)
_REDIS_INSTALL = "the redis package: pip install 'hurtle[redis]'"
_AMQP = ("aio_pika", "aiormq", "pamqp")

#: Every broker hurtle ships.
BROKERS: tuple[Registered, ...] = (
    Registered("hurtle.brokers.sqlite", "SQLiteBroker", ("sqlite",)),
    Registered("hurtle.brokers.memory", "MemoryBroker", ("memory",)),
    Registered("hurtle.brokers.redis", "RedisBroker", ("redis", "rediss", "unix"), _REDIS, _REDIS_INSTALL),
    Registered(
        "hurtle.brokers.redis", "RedisClusterBroker", ("redis+cluster", "rediss+cluster"),
        _REDIS, _REDIS_INSTALL,
    ),
    Registered(
        "hurtle.brokers.amqp", "AMQPBroker", ("amqp", "amqps"), _AMQP,
        "the aiormq package: pip install 'hurtle[amqp]'",
    ),
)

_BY_SCHEME: dict[str, Registered] = {scheme: entry for entry in BROKERS for scheme in entry.schemes}


def from_url(url: str | SecretURL, *, visibility_timeout: float = 30.0) -> Broker:
    """Make the broker a URL names; raise ``ConfigurationError`` for a bad one
    (whose message shows the URL without its password)."""
    return broker_class(url)(url, visibility_timeout=visibility_timeout)


def keeping_broker(
    broker_url: str | SecretURL, results_url: str | SecretURL | None, store_of: Callable[[Broker], S | None]
) -> tuple[Broker, S] | None:
    """The first of an app's broker and its result store's broker that keeps the
    store ``store_of`` asks for (``Broker.tally_store``, ``Broker.record_store``),
    with that store: how an app on RabbitMQ with ``results="redis://..."`` keeps
    profiles and worker records in that Redis. Makes no connection."""
    urls = [SecretURL(broker_url)] + ([SecretURL(results_url)] if results_url is not None else [])
    for url in urls:
        broker = from_url(url)
        store = store_of(broker)
        if store is not None:
            return broker, store
    return None


def broker_class(url: str | SecretURL) -> type[Broker]:
    """The class of the broker a URL names (what it declares, without making one)."""
    url = SecretURL(url)
    entry = _BY_SCHEME.get(url.scheme)
    if entry is None:
        known = (
            "sqlite:///path.db, memory://, redis://host:6379/0, rediss://..., unix:///path.sock,"
            " redis+cluster://host:6379, rediss+cluster://...,"
            " amqp://user:password@host:5672/vhost, amqps://..."
        )
        raise ConfigurationError(f"unknown broker URL {str(url)!r}: hurtle knows {known}")
    return entry.load(url)
