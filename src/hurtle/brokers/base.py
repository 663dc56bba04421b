"""The broker contract: batch-first, async, at least once.

Every broker (memory, SQLite, Redis, RabbitMQ) implements this class and passes
the one suite in ``tests/contract/``. Methods take and return batches because
every round trip counts: a worker fetches as many messages as it has free slots
and acknowledges a loop tick's worth at once.

A broker object belongs to one event loop in one process. Make it after fork
(one client per process, shared by every task, never one per task).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from hurtle.limit_store import LimitStore
from hurtle.records import RecordStore
from hurtle.results import ResultStore
from hurtle.tallies import TallyStore
from hurtle.urls import SecretURL

#: Where ``Broker.locate`` found a task's message: waiting (ready, delayed, or leased
#: with its lease run out), or leased by a worker whose lease is alive.
Location = Literal["queued", "running"]
#: Awaited by ``Broker.requeue_dead_by_id`` with the task ids of the dead letters it
#: is about to put back, before any of them is back where a worker can run it.
BeforeMove = Callable[[Sequence[str]], Awaitable[None]]


@dataclass(slots=True)
class Message:
    """An encoded message on its way in: ``eta`` (unix seconds) delays it."""

    # Not frozen: a frozen dataclass's ``__init__`` is an ``object.__setattr__`` per
    # field, measured at a third of the cost of encoding a no-op task in ``send_many``.

    id: str
    queue: str
    body: bytes
    eta: float | None = None


@dataclass(slots=True)
class Delivery:
    """A leased message: its bytes, where it came from and the broker's receipt.

    ``deliveries`` counts how many times the broker has handed this message out,
    this time included; it survives worker crashes, so a poison message that
    kills its process is dead-lettered after ``max_deliveries``.
    """

    queue: str
    body: bytes
    deliveries: int
    receipt: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's counts. ``in_flight`` (messages leased by any consumer) is None
    where the broker cannot count other consumers' leases
    (``Broker.counts_all_in_flight`` False).

    ``oldest_ready_age``: seconds the oldest ready message has waited since it
    became ready (sent, its eta passed, sent again by a retry, or its lease ran
    out), so how far behind the workers are; 0.0 when nothing is ready, since
    nothing waits. None where the broker cannot know it without consuming
    (``Broker.knows_queue_age`` False). Each broker's ``stats`` says what it reads.
    """

    name: str
    ready: int
    delayed: int
    in_flight: int | None
    dead: int
    oldest_ready_age: float | None

    @property
    def pending(self) -> int:
        """Messages not yet finished that the broker can count: ready, delayed,
        and leased unless ``in_flight`` is None (then a lower bound)."""
        return self.ready + self.delayed + (self.in_flight or 0)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not run again unless requeued, and why.

    ``id`` names this dead letter in its broker's store; ``message_id`` is the id
    the message was sent with (``Message.id``: for hurtle's own, the task id).
    """

    id: str
    queue: str
    body: bytes
    reason: str
    failed_at: float
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class Requeued:
    """What ``requeue_dead_by_id`` did: how many dead letters went back, the ids,
    in the order given, that named none of them, and the task ids that went back
    (whose stored failure a caller may now forget: the task will run again)."""

    count: int
    unknown: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, ids: Iterable[str], moved: Sequence[tuple[str, str]]) -> Requeued:
        """From the ids asked for and the (dead letter id, message id) pairs moved."""
        return cls(len(moved), unknown_ids(ids, moved), tuple(dict.fromkeys(m for _, m in moved if m)))


def unknown_ids(ids: Iterable[str], requeued: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The ids, each once and in the order given, that name none of the ``requeued``
    dead letters, given as (dead letter id, message id) pairs."""
    known = {i for pair in requeued for i in pair}
    return tuple(dict.fromkeys(i for i in ids if i not in known))


def each_once(queues: Sequence[str], quotas: Sequence[int]) -> dict[str, int]:
    """Each queue's quota, by queue in order; a queue named twice keeps its first place."""
    first: dict[str, int] = {}
    for queue, quota in zip(queues, quotas, strict=True):
        first.setdefault(queue, quota)
    return first


def allot(ready: Sequence[int], quotas: Sequence[int], room: int) -> list[int]:
    """How many to take from each queue, given how many each has ready: up to its
    quota from each in order, then what room is left from each in order (the
    ``quotas`` rule of ``Broker.fetch``)."""
    takes = [0] * len(ready)
    for limit in (quotas, ready):
        for index, (have, most) in enumerate(zip(ready, limit, strict=True)):
            take = max(0, min(have - takes[index], most - takes[index], room))
            takes[index] += take
            room -= take
    return takes


class Broker(abc.ABC):
    """Where messages wait, are leased, acknowledged, retried and dead-lettered."""

    #: URL schemes this class serves, e.g. ``("sqlite",)``.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True when other processes (and machines, for a server) reach the same queues
    #: through their own broker object. False for ``memory://``: a worker on it could
    #: never receive work from a producer in another process.
    shared_across_processes: ClassVar[bool] = True
    #: True when locate() can find a message by its task id. False where a queue
    #: cannot be searched (RabbitMQ): there locate() returns ``{}``.
    locates_messages: ClassVar[bool] = False
    #: True when a lease ends ``visibility_timeout`` after the last ``extend`` and its
    #: message is delivered again, counted. False for RabbitMQ: a delivery stays leased
    #: while its channel lives, and the server redelivers it, counted, when the
    #: connection closes.
    leases_expire: ClassVar[bool] = True
    #: True when stats() counts in ``in_flight`` the messages every consumer holds.
    #: False for RabbitMQ, which tells a client only of its own unacked messages:
    #: there ``in_flight`` is None.
    counts_all_in_flight: ClassVar[bool] = True
    #: True when stats() tells how long the oldest ready message has waited
    #: (``QueueStats.oldest_ready_age``). False for RabbitMQ, which shows a client
    #: a queue's length but no message before it is consumed: there the age is None.
    knows_queue_age: ClassVar[bool] = True
    #: Whether ``added_counts`` can tell how many messages each queue ever took in:
    #: what the task history's "in" rate is read from. True on Redis 7.0 and newer
    #: (a stream's ``entries-added``); elsewhere the rate in shows as unknown.
    counts_added: ClassVar[bool] = False
    #: hurtle's own options in this broker's URL query (``?prefix=...``). Any other
    #: option is one its client library takes, or the URL is a ``ConfigurationError``.
    url_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, url: str | SecretURL, *, visibility_timeout: float) -> None:
        #: Prints without its password; ``url.reveal()`` is for the client library only.
        self.url = SecretURL(url)
        self.visibility_timeout = visibility_timeout

    @classmethod
    def queue_name_problem(cls, url: str | SecretURL, queue: str) -> str | None:
        """Why ``queue`` cannot name a queue on this broker at ``url``, or None.
        ``App`` asks when a task or queue is defined, so a name the broker would
        refuse is a ``ConfigurationError`` there, not a failure in every worker.
        Any name will do unless a broker says otherwise."""
        return None

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections. Idempotent; other methods call it when needed."""

    @abc.abstractmethod
    async def enqueue(self, messages: Sequence[Message]) -> None:
        """Store every message or none (one transaction or pipeline).

        Messages with an ``eta`` in the future stay invisible until then.
        """

    @abc.abstractmethod
    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        """Lease up to ``max_count`` ready messages, oldest first across ``queues``.

        With ``quotas`` (one per queue), the queues are taken in their order instead:
        up to ``quotas[i]`` ready messages from each in turn, then, while room is
        left, the rest from each in turn (``allot``), so no slot stays empty while
        any of the queues has a ready message. Strict priority is every quota
        ``max_count``; weighted shares are the quotas the worker deals out
        (``hurtle.worker.priorities``). Each queue gives its own oldest first.

        Waits up to ``timeout`` seconds for the first one; returns ``[]`` if none
        came. A leased message is invisible to every other consumer until it is
        acknowledged, released, or its lease (``visibility_timeout`` from the
        last ``extend``) expires; then it is delivered again, counted.
        """

    @abc.abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Forget finished messages. Idempotent; an expired lease's ack is a no-op."""

    @abc.abstractmethod
    async def retry(self, delivery: Delivery, message: Message) -> None:
        """Replace ``delivery`` by ``message`` (its next attempt), atomically.

        The new message has a fresh delivery count and waits until its ``eta``.
        """

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to the dead-letter store with ``reason``, atomically."""

    @abc.abstractmethod
    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Heartbeat: renew the leases for another ``visibility_timeout``."""

    @abc.abstractmethod
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give unstarted messages back: visible at once, this delivery uncounted."""

    @abc.abstractmethod
    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        """Counts per queue; every known queue when ``queues`` is None."""

    async def added_counts(self, queues: Sequence[str]) -> dict[str, int]:
        """How many messages each of ``queues`` has ever taken in (sent, due after a
        delay, sent again by a retry), by queue: a counter that only grows while the
        queue lives. Queues whose count cannot be known are left out; this default,
        for brokers whose ``counts_added`` is False, knows none. One look, read-only."""
        return {}

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Delete every waiting message of ``queue``; return how many."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, newest first."""

    @abc.abstractmethod
    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        """Put dead letters back on their queues (all when ``ids`` is None, else as
        ``requeue_dead_by_id``, ``before_move`` included); return how many. All is
        every dead letter there when the call began: one that a worker dead-letters
        again meanwhile stays for the next requeue."""

    @abc.abstractmethod
    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        """Put back the dead letters that ``ids`` name, and say which ids named none.

        An id names the dead letter whose ``id`` it is, or else every dead letter
        whose ``message_id`` it is (the task id a user holds). Each goes back once,
        however often and either way it was named, as a fresh message (delivery
        count 0) that keeps its ``message_id``. ``Requeued.unknown`` lists the ids
        that named no dead letter moved by this call. Each dead letter moves
        atomically (never in both places or in neither; on RabbitMQ a crash can
        leave it in both); the batch as a whole does not.

        ``before_move`` is awaited with the task ids of each batch before the batch
        moves: a caller forgets their stored failures there, while no worker can have
        run them again yet (after the move, a quick worker's new result would be
        forgotten with the old one). It may be awaited with an id that then does not
        move (another requeue took it first), or again after a lost connection.
        """

    @abc.abstractmethod
    async def purge_dead(self, queue: str | None = None) -> int:
        """Delete dead letters; return how many."""

    async def locate(
        self, task_ids: Sequence[str], queues: Sequence[str] | None = None
    ) -> dict[str, Location]:
        """Where each task's message is now, by task id; ids with no message are left out.

        Looks in ``queues``, or in every known queue when None. One look, no
        waiting; read-only. Not atomic: a message that moves while the look runs
        (retried into the delayed set, finished and deleted) may be missed, so a
        caller that finds nothing looks at the result store again. The cost is the
        broker's (stated on each): where there is no index by task id, it is a
        scan of the queues looked in. This default, for brokers whose
        ``locates_messages`` is False, finds nothing.
        """
        return {}

    def result_store(self) -> ResultStore | None:
        """The broker's own result store, or None when it cannot keep results. The
        same object at every call; the broker's ``close`` closes it too."""
        return None

    def tally_store(self) -> TallyStore | None:
        """The broker's own tally store (``hurtle.tallies``: profiles and other figures
        every worker adds to), or None when it keeps none. The same object at every
        call; the broker's ``close`` closes it too."""
        return None

    def record_store(self) -> RecordStore | None:
        """The broker's own record store (``hurtle.records``: the worker registry's
        heartbeats), or None when it keeps none. The same object at every call; the
        broker's ``close`` closes it too."""
        return None

    def limit_store(self) -> LimitStore | None:
        """The broker's own limit store (``hurtle.limit_store``: rate and concurrency
        limits shared by every worker), or None when it keeps none. The same object
        at every call; the broker's ``close`` closes it too."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


class DeadLetterKeeper(Protocol):
    """The part of a broker that keeps its dead letters, as ``Broker`` names it."""

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int: ...

    async def requeue_dead_by_id(
        self, ids: Sequence[str], before_move: BeforeMove | None = None
    ) -> Requeued: ...

    async def purge_dead(self, queue: str | None = None) -> int: ...


class DeadLettersKept:
    """``Broker``'s dead-letter methods, answered by ``self._dead`` (Redis and
    RabbitMQ keep theirs in a helper of their own). Put before ``Broker``."""

    _dead: DeadLetterKeeper

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._dead.dead_letters(queue, limit)

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        return await self._dead.requeue_dead(ids, before_move)

    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        return await self._dead.requeue_dead_by_id(ids, before_move)

    async def purge_dead(self, queue: str | None = None) -> int:
        return await self._dead.purge_dead(queue)
