"""What the RabbitMQ broker declares: work and dead queues, the delay cascade, the catalogue.

Delays without plugins: a binary cascade of TTL queues (the design of
docs/architecture.md, "RabbitMQ"). A delay is rounded *up* to whole units of
``UNIT_MS`` and written in binary; level ``L`` holds a message ``2**L`` units
(a queue-wide ``x-message-ttl``, so its messages expire in the order they came
and none waits behind a longer one). Each level's headers exchange looks at
bit ``L`` of the message's delay (header ``hurtle-d<L>``): 1 sends it into the
level's queue of its hurtle queue, 0 passes it down to the exchange of level
``L - 1``; expired messages are dead-lettered to that exchange too. Below
level 0 is the work queue. A message passes one queue per set bit, never the
same queue twice (RabbitMQ drops dead-letter cycles), and no consumer ever
holds it while it waits (RabbitMQ's ``consumer_timeout`` would close the channel).

Each hurtle queue has its own level queues, so ``stats`` counts its delayed
messages and ``purge`` deletes them. Levels are declared lazily, up to the
highest a delay needs; they always form a prefix 0..n-1.

Names. RabbitMQ takes queue and exchange names of up to 255 bytes and keeps
those starting ``amq.`` for itself; pamqp, which writes the frames, takes only
letters, digits, spaces and ``-_.:@#,/+`` (and exchange names of up to 127).
``name_problem`` holds a hurtle queue name to all of it, for every name made
from it: ``AMQPBroker.queue_name_problem`` lets ``App`` refuse a bad one when a
task is defined (pamqp's ``ValueError`` once stopped every worker, reported as
RabbitMQ being unreachable).
"""

from __future__ import annotations

import math
import uuid

import aiormq
from pamqp import commands as spec
from pamqp import constants
from pamqp.common import FieldTable

from hurtle.brokers.amqp.link import AMQPURL, AMQPConn, Names, publish
from hurtle.errors import ConfigurationError

UNIT_MS = 10  # the delay unit: delays are rounded up to it
LEVELS = 29  # the top level's TTL (10 ms * 2**28, 31 days) stays below 2**32 ms, Erlang's timer limit
MAX_DELAY_UNITS = 2**LEVELS - 1  # 62 days
QUEUE_HEADER = "hurtle-queue"
NAME_BYTES = 255  # RabbitMQ's longest queue or exchange name (a short string)
EXCHANGE_CHARS = 127  # pamqp's longest exchange name
_QUEUE_NAME = constants.DOMAIN_REGEX["queue-name"]
_EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"]


def prefix_problem(names: Names) -> str | None:
    """Why no name can be made under ``names.prefix``, or None."""
    exchange = names.delay_exchange(LEVELS - 1)  # the longest exchange name made
    if names.work("").startswith("amq."):
        return "names starting with 'amq.' are reserved by RabbitMQ: choose another prefix"
    if not _EXCHANGE_NAME.fullmatch(exchange):
        return "the prefix takes letters, digits and - _ . : @ # , / + only"
    if len(exchange) > EXCHANGE_CHARS:
        return f"the prefix makes exchange names over {EXCHANGE_CHARS} characters ({exchange!r})"
    return None


def name_problem(names: Names, queue: str) -> str | None:
    """Why hurtle cannot make its RabbitMQ queues for ``queue`` under ``names``, or None."""
    problem = prefix_problem(names)
    if problem is not None:
        return problem
    if not _QUEUE_NAME.fullmatch(queue):
        return "a RabbitMQ queue name takes letters, digits, spaces and - _ . : @ # , / + only"
    longest = names.delay(LEVELS - 1, queue)
    size = len(longest.encode())
    if size > NAME_BYTES:
        room = NAME_BYTES - (size - len(queue.encode()))
        return (
            f"too long: hurtle's longest RabbitMQ name for it ({longest[:40]!r}...) would be {size} bytes,"
            f" over RabbitMQ's {NAME_BYTES}; with prefix {names.prefix!r} a queue name takes {room}"
        )
    return None


def bit_header(level: int) -> str:
    return f"hurtle-d{level}"


def delay_units(eta: float, now: float) -> int:
    """Whole units from ``now`` to ``eta``, rounded up: a message never comes early."""
    return max(0, math.ceil((eta - now) * 1000 / UNIT_MS))


def delay_headers(queue: str, units: int) -> tuple[int, dict[str, str]]:
    """The level a delay of ``units`` enters at, and the headers that route it down."""
    if units > MAX_DELAY_UNITS:
        days = MAX_DELAY_UNITS * UNIT_MS / 1000 / 86400
        seconds = units * UNIT_MS / 1000
        raise ValueError(f"a delay of {seconds:.0f}s is over the RabbitMQ broker's limit of {days:.0f} days")
    top = units.bit_length() - 1
    headers = {QUEUE_HEADER: queue}
    for level in range(top + 1):
        headers[bit_header(level)] = "1" if units >> level & 1 else "0"
    return top, headers


def _matching(**headers: str) -> FieldTable:
    return {"x-match": "all", **headers}


class Topology:
    """Declares what a queue needs, once per process (declarations are idempotent)."""

    def __init__(self, url: AMQPURL) -> None:
        self.url = url
        self.names: Names = url.names
        self._queues: set[str] = set()  # hurtle queues whose work and dead queues exist
        self._levels: dict[str, int] = {}  # hurtle queue -> delay levels known to exist
        self._exchanges = 0  # delay exchanges known to exist (levels 0..n-1)
        self._dead_exchange = False

    def forget(self) -> None:
        """Something we declared is gone (deleted by hand, or a broker without its data)."""
        self._queues.clear()
        self._levels.clear()
        self._exchanges = 0
        self._dead_exchange = False

    async def ensure_queue(self, conn: AMQPConn, queue: str) -> None:
        """The work queue, its dead queue and their bindings; a new queue is catalogued first."""
        if queue in self._queues:
            return
        names, channel = self.names, conn.pub
        problem = name_problem(names, queue)
        if problem is not None:  # refused here: pamqp's ValueError is not a lost connection
            raise ConfigurationError(f"queue {queue!r}: {problem}")
        work = names.work(queue)
        if await conn.count(work) is None:
            await self._catalogue(conn, queue)
        if not self._dead_exchange:
            await channel.exchange_declare(names.dead_exchange, exchange_type="direct", durable=True)
            self._dead_exchange = True
        await channel.queue_declare(work, durable=True, arguments=self._work_arguments(queue))
        await channel.queue_declare(names.dead(queue), durable=True)
        await channel.queue_bind(names.dead(queue), names.dead_exchange, routing_key=names.dead(queue))
        self._queues.add(queue)

    def _work_arguments(self, queue: str) -> FieldTable:
        arguments: FieldTable = {
            "x-queue-type": self.url.queue_type,
            # Dead letters of RabbitMQ's own (a quorum queue's delivery limit, a reject)
            # land in the dead queue: never dropped.
            "x-dead-letter-exchange": self.names.dead_exchange,
            "x-dead-letter-routing-key": self.names.dead(queue),
        }
        if self.url.queue_type == "quorum":
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"  # what at-least-once dead-lettering requires
            if self.url.delivery_limit is not None:
                arguments["x-delivery-limit"] = self.url.delivery_limit
        return arguments

    async def ensure_delay(self, conn: AMQPConn, queue: str, top: int) -> None:
        """Delay levels 0..``top`` of ``queue``, bottom up (a message never meets a missing level)."""
        names, channel = self.names, conn.pub
        for level in range(self._levels.get(queue, 0), top + 1):
            exchange = names.delay_exchange(level)
            if level >= self._exchanges:
                await channel.exchange_declare(exchange, exchange_type="headers", durable=True)
                if level > 0:
                    zero = _matching(**{bit_header(level): "0"})
                    await channel.exchange_bind(names.delay_exchange(level - 1), exchange, arguments=zero)
                self._exchanges = level + 1
            arguments: FieldTable = {"x-message-ttl": UNIT_MS * 2**level}
            if level == 0:
                arguments |= {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.work(queue)}
            else:
                arguments["x-dead-letter-exchange"] = names.delay_exchange(level - 1)
            await channel.queue_declare(names.delay(level, queue), durable=True, arguments=arguments)
            await channel.queue_bind(
                names.delay(level, queue), exchange,
                arguments=_matching(**{QUEUE_HEADER: queue, bit_header(level): "1"}),
            )
            if level == 0:
                due = _matching(**{QUEUE_HEADER: queue, bit_header(0): "0"})
                await channel.queue_bind(names.work(queue), exchange, arguments=due)
            self._levels[queue] = level + 1

    async def delay_levels(self, conn: AMQPConn, queue: str) -> int:
        """How many delay levels of ``queue`` exist (any process may have made more)."""
        levels = self._levels.get(queue, 0)
        while levels < LEVELS and await conn.count(self.names.delay(levels, queue)) is not None:
            levels += 1
        return levels

    # -- the catalogue -----------------------------------------------------------------

    async def _catalogue(self, conn: AMQPConn, queue: str) -> None:
        """Note a new queue. AMQP cannot list queues; this queue of names can be read.
        Two processes making the same queue at once may both note it: reads dedupe."""
        await conn.pub.queue_declare(self.names.catalogue, durable=True)
        properties = spec.Basic.Properties(delivery_mode=2, message_id=uuid.uuid4().hex)
        await publish(conn.pub, "", self.names.catalogue, queue.encode(), properties)

    async def known_queues(self, conn: AMQPConn) -> list[str]:
        """Every queue ever catalogued, sorted; duplicate entries are deleted on the way.

        Read with gets on a channel of its own, closed after (which puts the
        entries back): a second reader at the same moment sees fewer.
        """
        if await conn.count(self.names.catalogue) is None:
            return []
        channel = await conn.channel()
        try:
            seen: set[str] = set()
            while True:
                message = await channel.basic_get(self.names.catalogue)
                if not isinstance(message.delivery, spec.Basic.GetOk):
                    break
                name = message.body.decode(errors="replace")
                if name in seen and message.delivery.delivery_tag is not None:
                    await channel.basic_ack(message.delivery.delivery_tag)
                seen.add(name)
        finally:
            if not channel.is_closed:
                await channel.close()
        return sorted(seen)


def is_unroutable(exc: BaseException) -> bool:
    """A mandatory publish nothing could route: a queue or binding we declared is gone."""
    return isinstance(exc, aiormq.exceptions.PublishError)
