"""The Redis broker's names: its URL (redis-py's, plus hurtle's own options), its key
names, and the stream entries its deliveries come from."""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import urlencode, urlsplit

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, Connection, ConnectionPool, parse_url

from hurtle.brokers.base import Delivery
from hurtle.brokers.url_options import query_options, rebuild, refuse_unknown
from hurtle.errors import ConfigurationError
from hurtle.urls import SecretURL

GROUP = "hurtle"  # the one consumer group of every queue's stream
DEFAULT_PREFIX = "hurtle"
DEFAULT_RECONNECT_TIMEOUT = 30.0  # seconds an operation keeps reconnecting before BrokerError
OPTIONS = ("prefix", "reconnect_timeout")  # hurtle's own query options; the others go to redis-py
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Keys:
    """Key names: every key of one queue carries the hash tag ``{queue}`` so a queue
    lives on one Redis Cluster slot and its Lua scripts touch one slot only."""

    prefix: str

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def stream(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:stream"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:delayed"

    def dead(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:dead"

    def result(self, task_id: str) -> str:
        return f"{self.prefix}:result:{task_id}"

    @property
    def tallies(self) -> str:
        """What every tally's key begins with (``tally(key)`` is this + key)."""
        return f"{self.prefix}:tally:"

    def tally(self, key: str) -> str:
        return self.tallies + key

    @property
    def records(self) -> str:
        """What every record's key begins with (``record(key)`` is this + key)."""
        return f"{self.prefix}:record:"

    def record(self, key: str) -> str:
        return self.records + key

    def limit(self, key: str) -> str:
        """A rate or concurrency limit's key (``limits.py``)."""
        return f"{self.prefix}:limit:{key}"


@dataclass(frozen=True)
class RedisURL:
    """A hurtle Redis URL: redis-py's URL plus hurtle's own query parameters."""

    client_url: SecretURL  # what redis-py gets: the URL without hurtle's options
    where: str  # for logs and errors: no password
    keys: Keys
    reconnect_timeout: float
    cluster: bool = False  # redis+cluster:// or rediss+cluster://: a RedisCluster client

    @classmethod
    def parse(cls, url: str | SecretURL) -> RedisURL:
        url = SecretURL(url)
        parts = urlsplit(url.reveal())
        cluster = parts.scheme in CLUSTER_SCHEMES
        query = query_options(parts)
        ours = {k: v for k, v in query if k in OPTIONS}
        theirs = urlencode([(k, v) for k, v in query if k not in ours])
        client_url = SecretURL(rebuild(parts, theirs, scheme=parts.scheme.removesuffix("+cluster")))
        prefix = ours.get("prefix", DEFAULT_PREFIX)
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: prefix must be non-empty, without braces")
        try:
            reconnect_timeout = float(ours.get("reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT))
            kwargs = parse_url(client_url.reveal())
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: {url.scrub(str(exc))}") from None
        connection_class: type = RedisCluster if cluster else kwargs.get("connection_class", Connection)
        refuse_unknown(
            "Redis Cluster" if cluster else "Redis", (k for k, _ in query),
            {"hurtle": OPTIONS, "redis-py": client_options(connection_class)},
        )
        path = parts.path.strip("/")
        if parts.scheme != "unix" and path and not path.isdigit():
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: the path is a database number, like /0")
        if cluster:
            _check_cluster_url(url, kwargs)
            return cls(client_url, f"{parts.scheme}://{kwargs['host']}:{kwargs.get('port', 6379)}",
                       Keys(prefix), reconnect_timeout, cluster=True)
        if parts.scheme == "unix":
            where = f"unix://{kwargs.get('path', '')}"
        else:
            where = f"{parts.scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        where += f"/{kwargs.get('db', 0)}"
        return cls(client_url, where, Keys(prefix), reconnect_timeout)


def _check_cluster_url(url: SecretURL, kwargs: Mapping[str, object]) -> None:
    """A Cluster has database 0 only, TCP only, and a seed node to ask for the others."""
    if kwargs.get("db", 0) != 0:
        raise ConfigurationError(f"bad Redis URL {str(url)!r}: a Redis Cluster has database 0 only")
    if not kwargs.get("host"):
        raise ConfigurationError(f"bad Redis URL {str(url)!r}: name a node, like redis+cluster://host:6379")


@functools.cache
def client_options(client_class: type) -> frozenset[str]:
    """The query options redis-py takes from a URL whose connections are ``client_class``
    (or that makes a ``RedisCluster``): the keywords of its constructors that redis-py's
    URL parser can fill. It converts the options it knows (``URL_QUERY_ARGUMENT_PARSERS``)
    and hands on any other as text, so a keyword that takes no text is no URL option:
    an unknown one was a ``TypeError`` at the first connection, deep in redis-py."""
    constructors = [c.__dict__["__init__"] for c in client_class.__mro__ if "__init__" in c.__dict__]
    if client_class is not RedisCluster:  # whose own keywords take a cluster URL's options
        constructors.append(ConnectionPool.__init__)  # max_connections
    names = set()
    for constructor in constructors:
        for name, parameter in _signature(constructor).parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name == "self":
                continue
            if name in URL_QUERY_ARGUMENT_PARSERS or _takes_text(parameter.annotation):
                names.add(name)
    return frozenset(names)


def _signature(function: Callable[..., Any]) -> inspect.Signature:
    try:  # a module with postponed annotations has them as source text
        return inspect.signature(function, eval_str=True)
    except Exception:  # a name the module imports only for type checkers
        return inspect.signature(function)


def _takes_text(annotation: Any) -> bool:
    """``str``, or a union with ``str`` in it (not ``tuple[str, int]``: no text fits that)."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_text(arg) for arg in typing.get_args(annotation))
    return False


_ENTRY_ID = re.compile(r"^\d+-\d+$")


def is_entry_id(text: str) -> bool:
    return bool(_ENTRY_ID.match(text))


def entry_order(entry_id: bytes) -> tuple[int, int]:
    """Stream ids sort as (milliseconds, sequence)."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class RedisReceipt:
    """Where a delivery came from: its stream entry, and who holds it. (Not frozen:
    a frozen dataclass's ``__init__`` costs a ``object.__setattr__`` per field, per message.)"""

    entry_id: bytes
    message_id: bytes  # as stored: only a dead letter reads it
    consumer: str
    #: ``time.monotonic()`` before the read that leased it; 0.0 when not known
    #: (taken back from an expired lease, or given back): its ack is checked.
    leased_at: float = 0.0


def oldest_first(queues: list[str]) -> Callable[[Delivery], tuple[int, int, int]]:
    """Sort key of deliveries from several streams: (ms, seq, queue's place in ``queues``)."""

    def order(delivery: Delivery) -> tuple[int, int, int]:
        return (*entry_order(delivery.receipt.entry_id), queues.index(delivery.queue))

    return order


def queue_first(queues: list[str]) -> Callable[[Delivery], tuple[int, int, int]]:
    """Sort key of deliveries fetched by quotas: the queue's place in ``queues``, then age."""

    def order(delivery: Delivery) -> tuple[int, int, int]:
        return (queues.index(delivery.queue), *entry_order(delivery.receipt.entry_id))

    return order
