"""Acknowledging, extending and releasing leased entries, a script call per queue,
and the fencing that keeps a worker whose lease ran out from settling the new
holder's delivery.

Fencing: ack, extend, retry, dead-letter and release act only while the receipt's
consumer still holds the entry with the same delivery count, as SQLite matches
(seq, deliveries). The check is one ``XPENDING`` over the batch's range and a
Lua loop over its rows (lib.lua ``held_batch``).

An ack skips the check for an entry leased less than half a lease ago, by the
worker's own clock, read before it sent the read that leased the entry. Redis
counts an entry's idle time from its delivery, which came later, and lets
another consumer take it only once the whole lease has passed: nobody else can
hold it yet. The other half of the lease is the margin for the two clocks
(Redis counts in wall-clock milliseconds). On io tasks the check was a third
of the ack script's time on Redis, and 3% of the throughput (docs/benchmarks.md).
Were Redis's clock to jump ahead by more than half a lease, an ack could remove
an entry another worker had just taken over from this one: the task, which
succeeded here, would run once more there. Nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hurtle.brokers import Delivery, Message
from hurtle.brokers.redis.entries import clean_id
from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.url import GROUP, Keys, RedisReceipt, entry_order

#: The share of its lease after which an entry's ack is checked (see above).
UNCHECKED_SHARE = 0.5


async def each_queue(
    conn: RedisConn, keys: Keys, script: str, deliveries: Sequence[Delivery],
    unchecked_within_ms: int | None = None,
) -> None:
    """Run ``script`` once per (queue, consumer) over its entries: the lowest and
    highest id, and "entry-id deliveries" lines packed in one argument. With
    ``unchecked_within_ms`` (the ack's lease), the ids of entries leased more
    recently than its ``UNCHECKED_SHARE`` go in a last argument, one per line,
    not checked."""
    # One argument, not one per entry: redis-py's packing of arguments per entry
    # was measured at 14% of a busy worker's time.
    unchecked_after = -1.0
    if unchecked_within_ms is not None:
        unchecked_after = time.monotonic() - unchecked_within_ms / 1000 * UNCHECKED_SHARE
    groups: dict[tuple[str, str], tuple[list[tuple[tuple[int, int], bytes, int]], list[bytes]]] = {}
    for d in deliveries:
        receipt: RedisReceipt = d.receipt
        checked, unchecked = groups.setdefault((d.queue, receipt.consumer), ([], []))
        if receipt.leased_at > unchecked_after > 0.0:
            unchecked.append(receipt.entry_id)
        else:
            checked.append((entry_order(receipt.entry_id), receipt.entry_id, d.deliveries))
    calls: list[tuple[list[str], list[Any]]] = []
    for (queue, consumer), (checked, unchecked) in groups.items():
        checked.sort()
        lines = b"\n".join(b"%b %d" % (entry_id, count) for _, entry_id, count in checked)
        low, high = (checked[0][1], checked[-1][1]) if checked else (b"0-0", b"0-0")
        args: list[Any] = [GROUP, consumer, low, high, lines]
        if unchecked_within_ms is not None:
            args.append(b"\n".join(unchecked))
        calls.append(([keys.stream(queue)], args))
    if len(calls) == 1 and script == "ack":  # the flusher's, one batch at a time
        await conn.script_on_lane("ack", script, *calls[0])
    elif len(calls) == 1:
        await conn.script(script, *calls[0])
    else:
        await conn.scripts_in(conn.client.pipeline(transaction=False), script, calls)


def retry_call(keys: Keys, delivery: Delivery, message: Message) -> tuple[list[str], list[Any]]:
    """retry.lua's keys and arguments: ``delivery`` replaced by ``message`` on its queue."""
    receipt: RedisReceipt = delivery.receipt
    eta_ms = "" if message.eta is None else repr(message.eta * 1000)
    args = [GROUP, receipt.entry_id, receipt.consumer, delivery.deliveries,
            clean_id(message.id), message.body, eta_ms, repr(time.time() * 1000)]
    return [keys.stream(delivery.queue), keys.delayed(delivery.queue)], args


def dead_letter_call(keys: Keys, delivery: Delivery, reason: str) -> tuple[list[str], list[Any]]:
    """dead_letter.lua's keys and arguments: ``delivery`` moved to the dead letters."""
    receipt: RedisReceipt = delivery.receipt
    args = [GROUP, receipt.entry_id, receipt.consumer, delivery.deliveries,
            receipt.message_id, delivery.body, reason, repr(time.time())]
    return [keys.stream(delivery.queue), keys.dead(delivery.queue)], args
