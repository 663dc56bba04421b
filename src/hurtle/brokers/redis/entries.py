"""Stream entries as deliveries: what a read (``XREADGROUP``) or a reclaim
(housekeep.lua) returns, turned into ``Delivery`` objects with their receipts."""

from __future__ import annotations

from typing import Any

import msgspec

from hurtle.brokers import Delivery
from hurtle.brokers.redis.url import Keys, RedisReceipt

_json = msgspec.json.Encoder()


def parse_read(keys: Keys, consumer: str, queues: list[str], reply: Any, sent: float) -> list[Delivery]:
    """An XREADGROUP reply: ``{stream: [[entry id, [field, value, ...]], ...]}`` (RESP3;
    RESP2 has a list of pairs), or None. Unparsed (``compat.leave_unparsed``) but on a
    cluster, whose client makes each entry's fields a dict. ``sent``: the monotonic
    time before the read went out, when the leases started at the latest."""
    taken = []
    for stream, entries in reply.items() if isinstance(reply, dict) else reply or []:
        queue = queue_of(keys, queues, stream)
        for entry_id, fields in entries:
            if type(fields) is list and len(fields) == 4 and fields[0] == b"id" and fields[2] == b"body":
                # hurtle's own entry, the common case: no dict per message
                receipt = RedisReceipt(entry_id, fields[1], consumer, sent)
                taken.append(Delivery(queue, fields[3], 1, receipt))
            else:
                taken.append(delivery_of(consumer, queue, entry_id, 1, as_dict(fields), sent))
    return taken


def queue_of(keys: Keys, queues: list[str], stream: bytes) -> str:
    """The queue of ``queues`` whose stream key is ``stream``."""
    if len(queues) == 1:
        return queues[0]
    return queues[[keys.stream(q).encode() for q in queues].index(stream)]


def delivery_of(
    consumer: str, queue: str, entry_id: bytes, deliveries: int, fields: dict[bytes, bytes],
    leased_at: float = 0.0,
) -> Delivery:
    """An entry's delivery; one not written by hurtle carries every field, as JSON,
    so the dead letter the worker makes of it keeps what was there. ``leased_at``:
    ``RedisReceipt``'s (0.0 for an entry taken back from an expired lease)."""
    body = fields.get(b"body")
    if body is None:
        text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
        body = _json.encode(text)
    receipt = RedisReceipt(entry_id, fields.get(b"id", entry_id), consumer, leased_at)
    return Delivery(queue, body, deliveries, receipt)


def pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A Lua reply's flat field list as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def as_dict(fields: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    return fields if isinstance(fields, dict) else pairs(fields)


def clean_id(message_id: str) -> str:
    """A message id as the delayed set can hold it: it splits "<id>\\n<body>" at the first newline."""
    return message_id.replace("\n", " ")
