"""The RabbitMQ broker's plumbing: its URL, its names, one connection per process, reconnects.

One connection per broker object, made on first use in the process that uses it
(never one per task), with three channels: ``pub`` publishes (publisher confirms on unless
the URL says ``confirm=false``), ``sub`` consumes, gets and acknowledges, and
``probe`` answers passive declares (a missing queue closes the channel it was
asked on, so that channel is a throwaway). After ``fork`` the parent's
connection is dropped unclosed and a new one is made.

Every connection is a *generation*. A delivery tag means something only on the
channel it came from: once a connection is gone, RabbitMQ has put its unacked
messages back, and settling them on the next connection would be an error that
closes the channel. Receipts carry their generation; an old one settles nothing.

A lost connection is retried with backoff (``reconnect_timeout`` seconds at most,
then ``BrokerError``), and the log says so once when it is lost and once when it
is back. ``fetch`` does not wait: it raises at once and the worker backs off.

hurtle talks to aiormq (the transport aio-pika is built on) directly, because
it needs exact control of consumers (see ``broker.py``, fetching). aiormq
reads the socket through ``frames.SalvagingTransport``, so that no
message's properties can break the connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp.deliveries import Assembler
from hurtle.brokers.amqp.frames import SalvagingTransport, content_header
from hurtle.brokers.reconnect_backoff import ReconnectBackoff
from hurtle.brokers.url_options import query_options, rebuild, refuse_unknown
from hurtle.errors import BrokerError, ConfigurationError
from hurtle.urls import SecretURL

T = TypeVar("T")

log = logging.getLogger("hurtle.amqp")

DEFAULT_PREFIX = "hurtle"
DEFAULT_RECONNECT_TIMEOUT = 30.0  # seconds an operation keeps reconnecting before BrokerError
QUEUE_TYPES = ("classic", "quorum")
_CONNECT_TIMEOUT = 5.0  # seconds; a silent host (no RST) is given up on after this
OPTIONS = ("prefix", "queue_type", "confirm", "reconnect_timeout", "delivery_limit")  # hurtle's own
# What aiormq reads from a URL's query (its Connection, ``url.query.get``): it has no
# list of them to ask, and ignores any other, so hurtle keeps one. A test holds it
# to the installed aiormq's source.
AIORMQ_OPTIONS = (
    "auth", "cadata", "cafile", "capath", "certfile", "heartbeat", "keyfile", "name", "no_verify_ssl",
    "timeout",
)
_NOT_TRANSIENT = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.IncompatibleProtocolError,
    aiormq.exceptions.ChannelAccessRefused,
)

Callback = Callable[[DeliveredMessage], None]  # on the loop, for each delivery on ``sub``


@dataclass(frozen=True)
class Names:
    """Queue and exchange names, all under the URL's prefix ``P``::

        P.q.<queue>            the work queue (durable; classic or quorum)
        P.dead.<queue>         its dead letters (durable, classic: browsing never counts)
        P.delay.<L>.<queue>    delay level L: every message waits 2**L units, then moves on
        P.dead                 exchange (direct): dead letters, ours and RabbitMQ's
        P.delay.<L>            exchange (headers): routes by the bit L of a message's delay
        P.catalogue            one message per queue ever used (stats and dlq over all queues)
    """

    prefix: str

    def work(self, queue: str) -> str:
        return f"{self.prefix}.q.{queue}"

    def dead(self, queue: str) -> str:
        return f"{self.prefix}.dead.{queue}"

    def delay(self, level: int, queue: str) -> str:
        return f"{self.prefix}.delay.{level}.{queue}"

    def delay_exchange(self, level: int) -> str:
        return f"{self.prefix}.delay.{level}"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def catalogue(self) -> str:
        return f"{self.prefix}.catalogue"

    def queue_of(self, work_queue: str) -> str | None:
        """The hurtle queue a work queue name stands for, or None."""
        head = f"{self.prefix}.q."
        return work_queue[len(head) :] if work_queue.startswith(head) else None


@dataclass(frozen=True)
class AMQPURL:
    """A hurtle AMQP URL: aiormq's URL plus hurtle's own query options."""

    client_url: SecretURL  # what aiormq gets: the URL without hurtle's options
    where: str  # for logs and errors: no password
    names: Names
    queue_type: str
    confirm: bool
    reconnect_timeout: float
    delivery_limit: int | None

    @classmethod
    def parse(cls, url: str | SecretURL) -> AMQPURL:
        url = SecretURL(url)
        parts = urlsplit(url.reveal())
        query = query_options(parts)
        refuse_unknown("AMQP", (k for k, _ in query), {"hurtle": OPTIONS, "aiormq": AIORMQ_OPTIONS})
        ours = {k: v for k, v in query if k in OPTIONS}
        client_url = SecretURL(rebuild(parts, urlencode([(k, v) for k, v in query if k not in ours])))
        prefix = ours.get("prefix", DEFAULT_PREFIX)
        queue_type = ours.get("queue_type", "classic")
        if not prefix or any(c.isspace() for c in prefix):
            raise ConfigurationError(f"bad AMQP URL {str(url)!r}: prefix must be non-empty, without spaces")
        if queue_type not in QUEUE_TYPES:
            raise ConfigurationError(f"bad AMQP URL {str(url)!r}: queue_type is classic or quorum")
        confirm = ours.get("confirm", "true").lower()
        if confirm not in ("true", "false", "1", "0"):
            raise ConfigurationError(f"bad AMQP URL {str(url)!r}: confirm is true or false")
        try:
            reconnect_timeout = float(ours.get("reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT))
            limit = ours.get("delivery_limit")
            delivery_limit = int(limit) if limit else None
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"bad AMQP URL {str(url)!r}: {url.scrub(str(exc))}") from None
        if delivery_limit is not None and queue_type != "quorum":
            raise ConfigurationError(f"bad AMQP URL {str(url)!r}: delivery_limit needs queue_type=quorum")
        default_port = 5671 if parts.scheme == "amqps" else 5672
        where = f"{parts.scheme}://{parts.hostname or 'localhost'}:{port or default_port}{parts.path or '/'}"
        return cls(
            client_url, where, Names(prefix), queue_type, confirm in ("true", "1"),
            reconnect_timeout, delivery_limit,
        )


def task_callback(on_delivery: Callback) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
    """``on_delivery`` as aiormq calls a consumer's callback: a coroutine, run as a task."""

    async def callback(message: DeliveredMessage) -> None:
        on_delivery(message)

    return callback


class _CatchAll(dict[str, Any]):
    """``sub.consumers``, where aiormq looks up the callback of each delivery.

    aiormq forgets a consumer's callback when it is cancelled and drops any
    delivery that comes for it later. RabbitMQ may still send some (those it
    dispatched before it saw the cancel): they are unacked on our channel, and
    dropped they would sit there until the connection closes. Every delivery on
    ``sub`` is ours, so an unknown tag gets the broker's one callback.

    aiormq forgets a consumer here too when RabbitMQ cancels it (its queue was
    deleted): ``on_forgotten`` hears of every consumer forgotten.
    """

    def __init__(self, on_delivery: Callback, on_forgotten: Callable[[str], None]) -> None:
        super().__init__()
        self.fallback = task_callback(on_delivery)
        self.on_forgotten = on_forgotten

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, self.fallback)

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self.on_forgotten(key)
        return value


@dataclass
class AMQPConn:
    """One connection (one generation) and its channels, in the process that made it."""

    connection: aiormq.Connection
    pub: aiormq.Channel
    sub: aiormq.Channel
    generation: int
    pid: int = field(default_factory=os.getpid)
    probe: aiormq.Channel | None = None
    # One question at a time on ``probe``: a missing queue closes it under any other.
    probing: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The socket's writer (None: aiormq's own transport), where acks are written directly.
    writer: asyncio.StreamWriter | None = None

    def alive(self) -> bool:
        return not (self.connection.is_closed or self.pub.is_closed or self.sub.is_closed)

    async def count(self, queue: str) -> int | None:
        """Messages ready in ``queue`` (passive declare), or None when it does not exist."""
        async with self.probing:
            try:
                ok = await (await self._probe()).queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                self.probe = None  # RabbitMQ closed it
                return None
        return ok.message_count or 0

    async def purge(self, queue: str) -> int:
        """Delete the ready messages of ``queue`` (one that does not exist has none)."""
        if await self.count(queue) is None:
            return 0
        async with self.probing:
            try:
                ok = await (await self._probe()).queue_purge(queue)
            except aiormq.exceptions.ChannelNotFoundEntity:
                self.probe = None
                return 0
        return (ok.message_count or 0) if ok is not None else 0

    async def _probe(self) -> aiormq.Channel:
        if self.probe is None or self.probe.is_closed:
            self.probe = await self.channel()
        return self.probe

    async def channel(self) -> aiormq.Channel:
        return cast(aiormq.Channel, await self.connection.channel(publisher_confirms=False))


async def publish(
    channel: aiormq.Channel, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
) -> None:
    """Publish one message. With confirms on (the default) it is mandatory and this
    returns once RabbitMQ has it, or raises ``PublishError`` when nothing could route
    it, ``DeliveryError`` on a nack; with ``confirm=false``, once it is written."""
    confirmed = channel.publisher_confirms
    await channel.basic_publish(
        body, exchange=exchange, routing_key=routing_key, properties=properties, mandatory=confirmed
    )


class AMQPLink:
    """The broker's connection to RabbitMQ: made lazily per process, retried with backoff."""

    def __init__(
        self, url: AMQPURL, on_delivery: Callback, on_not_found: Callable[[], None],
        on_cancelled: Callable[[str], None],
    ) -> None:
        self.url = url
        self._on_delivery = on_delivery
        self._on_cancelled = on_cancelled  # a consumer on ``sub`` is gone (cancelled by us or RabbitMQ)
        self._on_not_found = on_not_found  # a queue or exchange we declared is gone: declare again
        self._conn: AMQPConn | None = None
        self._generation = 0
        self._opening = asyncio.Lock()
        self._outage = ReconnectBackoff("RabbitMQ", url.where, log)

    def current(self) -> AMQPConn | None:
        """The live connection of this process, without making one."""
        conn = self._conn
        if conn is None or conn.pid != os.getpid() or not conn.alive():
            return None
        return conn

    async def conn(self) -> AMQPConn:
        conn = self._conn
        if conn is not None and conn.pid != os.getpid():
            conn = self._conn = None  # the parent's, inherited through fork: drop it, never close it
        if conn is not None and conn.alive():
            return conn
        async with self._opening:
            if self._conn is None or not self._conn.alive():
                await self._discard()
                self._conn = await self._open()
            return self._conn

    async def _open(self) -> AMQPConn:
        host = socket.gethostname()
        transport = SalvagingTransport(self.url.client_url.scheme)
        connection = await asyncio.wait_for(
            aiormq.connect(
                self.url.client_url.reveal(),
                client_properties={"connection_name": f"hurtle:{host}:{os.getpid()}"},
                transport_factory=transport,
            ),
            _CONNECT_TIMEOUT,
        )
        try:
            pub = cast(aiormq.Channel, await connection.channel(publisher_confirms=self.url.confirm))
            sub = cast(aiormq.Channel, await connection.channel(publisher_confirms=False))
        except BaseException:
            await connection.close()
            raise
        if transport.reader is not None:  # its deliveries skip aiormq's frame queue (deliveries.py)
            assembler = Assembler(sub, sub.number, self._on_delivery, content_header)
            transport.reader.deliver_direct(sub.number, assembler)
        sub.consumers = _CatchAll(self._on_delivery, self._on_cancelled)
        self._generation += 1
        return AMQPConn(connection, pub, sub, self._generation, writer=transport.writer)

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.pid == os.getpid() and not conn.connection.is_closed:
            try:
                await conn.connection.close()
            except Exception:  # it is going away anyway
                log.debug("closing a broken connection failed", exc_info=True)

    async def close(self) -> None:
        await self._discard()

    async def call(self, op: Callable[[AMQPConn], Awaitable[T]], patience: float | None = None) -> T:
        """Run ``op``; on a lost connection, reconnect with backoff for up to ``patience``
        seconds (default: the URL's ``reconnect_timeout``), then raise ``BrokerError``."""
        deadline = time.monotonic() + (self.url.reconnect_timeout if patience is None else patience)
        while True:
            conn: AMQPConn | None = None
            try:
                conn = await self.conn()
                result = await op(conn)
            except _NOT_TRANSIENT as exc:
                await self._discard()
                raise BrokerError(f"RabbitMQ at {self.url.where} refused us: {exc!r}") from exc
            except Exception as exc:
                if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
                    self._on_not_found()
                if not self._transient(exc, conn):
                    if isinstance(exc, aiormq.exceptions.AMQPError):
                        await self._discard()  # a channel error closed one of our channels
                        raise BrokerError(f"RabbitMQ at {self.url.where}: {exc!r}") from exc
                    raise
                await self._discard()
                pause = self._outage.next_pause()
                retrying = time.monotonic() + pause <= deadline
                self._outage.failed(exc, retrying)
                if not retrying:
                    raise BrokerError(f"RabbitMQ at {self.url.where} is unreachable: {exc!r}") from exc
                await asyncio.sleep(pause)
                continue
            self._outage.recovered()
            return result

    @staticmethod
    def _transient(exc: Exception, conn: AMQPConn | None) -> bool:
        """A lost connection (worth a reconnect), not a refusal or a bug."""
        if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError)):
            return True  # AMQPConnectionError is a ConnectionError
        if isinstance(exc, aiormq.exceptions.ChannelInvalidStateError):
            return True  # a channel closed under us: with its connection, or by an earlier error
        lost = conn is not None and not conn.alive()
        return lost and isinstance(exc, (aiormq.exceptions.AMQPError, RuntimeError))
