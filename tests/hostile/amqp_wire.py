"""Messages as a foreign AMQP producer writes them: any field type RabbitMQ accepts, in
properties encoded byte by byte here (pamqp, hurtle's own encoder, cannot write doubles,
non-UTF-8 strings or names, or timestamps past the year 9999), published with aiormq
straight into a work queue, bypassing hurtle's client.

A field is ``(tag, value)`` with the AMQP 0-9-1 tag RabbitMQ reads (``b"d"``: a double,
``b"S"``: a long string of any bytes, ``b"F"``: a table of ``(name bytes, field)``...).
``fields()`` generates them with hypothesis: every tag, every size of integer, extreme
and fractional numbers, binary and non-ASCII text, nested tables and arrays. RabbitMQ
refuses NaN and infinities (it closes the publisher's connection), so no producer can
send them and none is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiormq
from hypothesis import strategies as st
from pamqp import commands as spec

Field = tuple[bytes, Any]
Table = list[tuple[bytes, Field]]

_FIXED = {
    b"b": ">b", b"B": ">B", b"s": ">h", b"u": ">H", b"I": ">i", b"i": ">I", b"l": ">q", b"L": ">Q",
    b"f": ">f", b"d": ">d", b"T": ">Q",
}


def field(tag: bytes, value: Any) -> bytes:
    """One field value, tag first, as it travels."""
    if tag in _FIXED:
        return tag + struct.pack(_FIXED[tag], value)
    if tag == b"t":
        return tag + bytes([1 if value else 0])
    if tag == b"V":
        return tag
    if tag == b"D":
        scale, raw = value
        return tag + struct.pack(">BI", scale, raw)
    if tag in (b"S", b"x"):
        return tag + struct.pack(">I", len(value)) + bytes(value)
    if tag == b"F":
        return tag + table(value)
    if tag == b"A":
        items = b"".join(field(*item) for item in value)
        return tag + struct.pack(">I", len(items)) + items
    raise ValueError(f"no such field type {tag!r}")


def table(items: Table) -> bytes:
    """A field table: its size, then each name (a short string of any bytes) and value."""
    data = b"".join(bytes([len(name)]) + name + field(*value) for name, value in items)
    return struct.pack(">I", len(data)) + data


def nested(depth: int) -> bytes:
    """A headers table with a value nested ``depth`` tables deep (built from the inside
    out: ``table`` would recurse as deep)."""
    value = b"V"
    for _ in range(depth):
        value = b"F" + struct.pack(">I", len(value) + 2) + b"\x01k" + value
    return struct.pack(">I", len(value) + 5) + b"\x04deep" + value


class RawProperties(spec.Basic.Properties):
    """Basic properties written as given: a persistent message with these headers, and
    optionally a ``message_id`` and a ``timestamp`` of any bytes or size."""

    def __init__(
        self, headers: Table | bytes, message_id: bytes | None = None, timestamp: int | None = None
    ) -> None:
        super().__init__()
        self.raw_headers, self.raw_message_id, self.raw_timestamp = headers, message_id, timestamp

    def marshal(self) -> bytes:
        raw = self.raw_headers if isinstance(self.raw_headers, bytes) else table(self.raw_headers)
        flags, data = 1 << 13 | 1 << 12, raw + b"\x02"  # headers, delivery mode
        if self.raw_message_id is not None:
            flags |= 1 << 7
            data += bytes([len(self.raw_message_id)]) + self.raw_message_id
        if self.raw_timestamp is not None:
            flags |= 1 << 6
            data += struct.pack(">Q", self.raw_timestamp)
        return struct.pack(">H", flags) + data


@contextlib.asynccontextmanager
async def raw_channel(url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A channel with publisher confirms on a connection of its own (not hurtle's)."""
    connection = await asyncio.wait_for(aiormq.connect(url), 10.0)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def publish_raw(url: str, work_queue: str, messages: Sequence[tuple[bytes, RawProperties]]) -> None:
    """Publish each (body, properties) to ``work_queue`` through the default exchange,
    mandatory and confirmed (a queue that is not there is an error, not a silent drop)."""
    async with raw_channel(url) as channel:
        for body, properties in messages:
            await channel.basic_publish(body, routing_key=work_queue, properties=properties, mandatory=True)


async def redeliver_all(url: str, work_queue: str) -> None:
    """Take every ready message unacknowledged and close: RabbitMQ puts them back flagged
    ``redelivered`` (a quorum queue counts them in ``x-delivery-count``), as after a
    worker died holding them. (A message pamqp cannot decode closes this connection
    early: those RabbitMQ had sent by then are flagged.)"""
    connection = await asyncio.wait_for(aiormq.connect(url), 10.0)
    try:
        channel = await connection.channel()
        ok = await channel.queue_declare(work_queue, passive=True)
        ready = ok.message_count or 0
        received: list[object] = []
        all_came = asyncio.Event()

        async def hold(message: object) -> None:  # unacknowledged
            received.append(message)
            if len(received) >= ready:
                all_came.set()

        if ready:
            await channel.basic_qos(prefetch_count=ready)
            await channel.basic_consume(work_queue, hold)
            closed = asyncio.ensure_future(connection.closing)
            await asyncio.wait([asyncio.ensure_future(all_came.wait()), closed], timeout=10.0,
                               return_when=asyncio.FIRST_COMPLETED)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


# -- hypothesis --------------------------------------------------------------------------

_LIMITS = {
    b"b": (-(2**7), 2**7 - 1), b"B": (0, 2**8 - 1), b"s": (-(2**15), 2**15 - 1), b"u": (0, 2**16 - 1),
    b"I": (-(2**31), 2**31 - 1), b"i": (0, 2**32 - 1), b"l": (-(2**63), 2**63 - 1), b"L": (0, 2**64 - 1),
    b"T": (0, 2**64 - 1),
}
_EDGES = [0, 1, -1, 2**7, 2**15, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 10**19, 2**64 - 1, -(2**63)]


def _integer(tag: bytes) -> st.SearchStrategy[Field]:
    low, high = _LIMITS[tag]
    edges = [n for n in _EDGES if low <= n <= high]
    return st.tuples(st.just(tag), st.one_of(st.sampled_from(edges), st.integers(low, high)))


def _double() -> st.SearchStrategy[float]:
    extremes = st.sampled_from([1e300, -1e300, 1e19, 0.1, 5e-324, 3.4e38, 2.0**63, -0.0])
    return st.one_of(extremes, st.floats(allow_nan=False, allow_infinity=False))


_text = st.one_of(
    st.text().map(lambda s: s.encode("utf-8", "surrogatepass")),  # lone surrogates: not UTF-8
    st.binary(max_size=64),
    st.sampled_from([b"3", b"1e19", b"-1", b"\xff\xfe", "na\u00efve \u2603".encode()]),
)
_names = st.one_of(
    st.sampled_from([
        b"hurtle-deliveries", b"hurtle-at", b"x-delivery-count", b"hurtle-unreadable", b"hurtle-reason",
        b"hurtle-dead-id", b"hurtle-d0", b"x-death",
    ]),
    st.binary(max_size=255),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")[:255]),
)
_scalars: st.SearchStrategy[Field] = st.one_of(
    *(_integer(tag) for tag in _LIMITS),
    st.tuples(st.just(b"t"), st.booleans()),
    st.tuples(st.just(b"d"), _double()),
    st.tuples(st.just(b"f"), st.floats(width=32, allow_nan=False, allow_infinity=False)),
    st.tuples(st.just(b"D"), st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1))),
    st.tuples(st.sampled_from([b"S", b"x"]), _text),
    st.just((b"V", None)),
)


def fields() -> st.SearchStrategy[Field]:
    """Any field value RabbitMQ passes on, nested tables and arrays included."""
    return st.recursive(
        _scalars,
        lambda inner: st.one_of(
            st.tuples(st.just(b"F"), st.lists(st.tuples(_names, inner), max_size=4)),
            st.tuples(st.just(b"A"), st.lists(inner, max_size=4)),
        ),
        max_leaves=12,
    )


def headers() -> st.SearchStrategy[Table]:
    """A message's headers table, hurtle's own names among the others."""
    return st.lists(st.tuples(_names, fields()), max_size=6)


def properties() -> st.SearchStrategy[RawProperties]:
    """Headers, and sometimes a message id of any bytes or a timestamp of any size."""
    return st.builds(
        RawProperties,
        headers(),
        st.none() | st.binary(max_size=255) | st.text(max_size=30).map(str.encode),
        st.none() | st.sampled_from([0, 2**32, 1_700_000_000_000, 2**63]) | st.integers(0, 2**64 - 1),
    )
