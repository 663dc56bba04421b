"""Acknowledging on the RabbitMQ broker's consuming channel: one ``multiple`` ack per run.

An ack with ``multiple`` settles every unacknowledged delivery tag up to its own
on the channel, so one frame can settle a whole batch, but only if no tag below
it is still wanted unsettled: a leased message still running, a buffered one no
fetch took yet. ``Unacked`` knows every tag handed to us on the channel and not
settled, and splits a batch of acks into the longest run from the lowest
outstanding tag (one ``multiple`` ack) and single acks for the rest. Tasks of
one batch mostly finish in the order they came, so a busy worker sends about
one ack frame per flush instead of one per message (each frame is a write
system call and ~20% of a worker's CPU went to them: docs/benchmarks.md).
Threads finish out of order, so a flush of ``def`` tasks' acks still had about
three single acks beside its ``multiple`` one: all of a flush's frames go out
in one write (``compat.write_acks``), straight to the socket when nothing is
queued before it: a turn of aiormq's writer task less, which under a busy loop
made an ack go out 0.45 ms later (docs/benchmarks.md).

Acks are sent under a lock: a ``multiple`` ack that overtook an earlier one
would settle the earlier one's tag first, and RabbitMQ closes the channel on an
ack of a tag it no longer knows.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable

import aiormq

from hurtle.brokers.amqp.compat import fast_path, write_acks


class Unacked:
    """Delivery tags of one channel handed to us and not acknowledged or rejected yet."""

    def __init__(self) -> None:
        self._tags: list[int] = []  # a heap: the lowest outstanding tag first
        self._settled: set[int] = set()  # settled one by one while a lower tag was outstanding
        self._sending = asyncio.Lock()
        #: The connection's socket writer: acks written on it directly, when nothing is queued
        #: before them, skip a turn of aiormq's writer task (``compat.write_acks``).
        self.writer: asyncio.StreamWriter | None = None

    def add(self, tag: int) -> None:
        heapq.heappush(self._tags, tag)

    def rejected(self, tag: int) -> None:
        """``tag`` was settled otherwise (a reject): never part of a run again."""
        self._settled.add(tag)

    def plan(self, tags: Iterable[int]) -> tuple[int | None, list[int]]:
        """(the tag of one ``multiple`` ack or None, the tags to ack one by one) for ``tags``,
        which must be outstanding; they count as settled from here on."""
        wanted = set(tags)
        heap, settled = self._tags, self._settled
        upto: int | None = None
        while heap and (heap[0] in wanted or heap[0] in settled):
            tag = heapq.heappop(heap)
            if tag in wanted:
                wanted.discard(tag)
                upto = tag
            else:
                settled.discard(tag)
        settled.update(wanted)
        return upto, sorted(wanted)

    async def ack(self, channel: aiormq.Channel, tags: Iterable[int]) -> None:
        """Acknowledge ``tags`` on ``channel`` in as few frames as the outstanding tags allow."""
        async with self._sending:
            upto, singles = self.plan(tags)
            if upto is None and not singles:
                return
            if fast_path(channel):
                await write_acks(channel, upto, singles, self.writer)
                return
            if upto is not None:
                await channel.basic_ack(upto, multiple=True, wait=not singles)
            for index, tag in enumerate(singles):
                await channel.basic_ack(tag, wait=index == len(singles) - 1)
