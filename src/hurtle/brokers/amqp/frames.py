"""Reading RabbitMQ's frames so that no message's properties can break the connection.

aiormq decodes each frame with pamqp as it reads it, and pamqp raises on
properties RabbitMQ accepts and passes on untouched: a timestamp past the year
9999 (a millisecond or microsecond epoch sent as a timestamp; the Java client
writes a time before 1970 as a huge unsigned one), a header name or a short
string that is not UTF-8, a table nested deeper than Python's recursion limit.
aiormq then closes the connection, RabbitMQ puts the message back, and its
next delivery closes the next connection: one message from a foreign producer
stopped every worker of its queue, and its neighbours' delivery counts rose
until they were dead-lettered unrun.

``SalvagingTransport`` is aiormq's documented ``transport_factory`` hook: it
hands aiormq the socket's bytes frame by frame and checks each content-header
frame with pamqp first. One that pamqp cannot decode is rewritten: every
property that decodes is kept, the others are dropped, and the header
``hurtle-unreadable`` says which and why. The fetch dead-letters such a message
with that reason (``headers.unreadable``). The check decodes each header
frame twice (here and in aiormq), a small cost beside a delivery's.

The consuming channel's deliveries do not go to aiormq at all: the reader hands
their frames to that channel's ``deliveries.Assembler``, which decodes each
header once (``content_header``: salvaged the same way) and gives the broker
whole messages.
"""

# Measured: in a fetch-and-ack loop of 20,000 messages the client's CPU per message
# went from 78-85 us to 82-89 us with the check (3 interleaved runs).

from __future__ import annotations

import asyncio
import struct
from typing import Any

from pamqp import commands as spec
from pamqp import constants, decode, frame, header
from yarl import URL

from hurtle.brokers.amqp.compat import (
    TCPTransportFactory,
    TLSTransportFactory,
    TransportFactory,
    content_flags,
)
from hurtle.brokers.amqp.deliveries import Assembler
from hurtle.brokers.amqp.headers import UNREADABLE, writable

_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_KNOWN = {constants.FRAME_METHOD, constants.FRAME_HEADER, constants.FRAME_BODY, constants.FRAME_HEARTBEAT}
_CHUNK = 256 * 1024  # bytes read from the socket at a time
_SIZES = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}


class SalvagingTransport(TransportFactory):
    """aiormq's TCP (or TLS, for ``amqps``) transport, its reads passed through ``_Reader``."""

    def __init__(self, scheme: str) -> None:
        self._inner = TLSTransportFactory() if scheme == "amqps" else TCPTransportFactory()
        self.reader: _Reader | None = None  # the connection's, once made (one connection per factory)
        self.writer: asyncio.StreamWriter | None = None  # its socket's writer: acks go out on it directly

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._inner.create(url, **kwargs)
        self.reader, self.writer = _Reader(reader), writer
        return self.reader, writer  # type: ignore[return-value]  # what aiormq reads of a StreamReader


class _Reader:
    """The part of ``asyncio.StreamReader`` aiormq's frame reader uses (``readexactly``,
    ``read``, ``at_eof``), over the socket's: whole frames only, header frames checked."""

    def __init__(self, inner: asyncio.StreamReader) -> None:
        self._inner = inner
        self._ready = bytearray()  # checked: aiormq may have them
        self._raw = bytearray()  # read from the socket, not a whole frame yet
        self._opaque = False  # bytes that are not frames (a protocol mismatch): passed as they come
        self._direct: dict[int, Assembler] = {}  # channel number -> its deliveries, kept from aiormq

    def deliver_direct(self, number: int, assembler: Assembler) -> None:
        """Channel ``number``'s deliveries go to ``assembler`` from now on (``deliveries.py``)."""
        self._direct[number] = assembler

    def at_eof(self) -> bool:
        return not self._ready and not self._raw and self._inner.at_eof()

    async def read(self, n: int = -1) -> bytes:
        if not self._ready and not self._raw:
            return await self._inner.read(n)
        self._ready += self._raw
        self._raw.clear()
        size = len(self._ready) if n < 0 else min(n, len(self._ready))
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    async def readexactly(self, n: int) -> bytes:
        while len(self._ready) < n:
            chunk = await self._inner.read(_CHUNK)
            if not chunk:
                partial = bytes(self._ready + self._raw)
                self._ready.clear()
                self._raw.clear()
                raise asyncio.IncompleteReadError(partial, n)
            self._raw += chunk
            self._sort()
        out = bytes(self._ready[:n])
        del self._ready[:n]
        return out

    def _sort(self) -> None:
        """Move each whole frame from ``_raw`` to ``_ready``, header frames made decodable."""
        raw, ready = self._raw, self._ready
        if self._opaque:
            ready += raw
            raw.clear()
            return
        start = done = 0
        while len(raw) - start >= _HEAD.size:
            kind, channel, size = _HEAD.unpack_from(raw, start)
            if kind not in _KNOWN:  # not a frame (b"AMQP..."): aiormq says what it is
                self._opaque = True
                ready += raw
                raw.clear()
                return
            end = start + _HEAD.size + size + 1
            if end > len(raw):
                break
            assembler = self._direct.get(channel) if self._direct else None
            if assembler is not None and assembler.take(kind, raw, start, end):
                ready += raw[done:start]
                done = end
            elif kind == constants.FRAME_HEADER:
                checked = decodable(bytes(raw[start:end]), channel)
                if checked is not None:
                    ready += raw[done:start]
                    ready += checked
                    done = end
            start = end
        ready += raw[done:start]
        del raw[:start]


def decodable(whole: bytes, channel: int) -> bytes | None:
    """None when pamqp decodes the content-header frame ``whole``, else a frame it decodes."""
    try:
        frame.unmarshal(whole)
        return None
    except Exception as exc:  # RecursionError included: a table nested too deep
        return _salvaged(whole, channel, exc)


def content_header(whole: bytes, channel: int) -> header.ContentHeader:
    """The content-header frame ``whole``, decoded; what pamqp cannot decode is dropped and
    named in the header ``hurtle-unreadable``, as ``decodable`` does for aiormq."""
    try:
        decoded = frame.unmarshal(whole)[2]
    except Exception as exc:  # RecursionError included
        decoded = frame.unmarshal(_salvaged(whole, channel, exc))[2]
    if not isinstance(decoded, header.ContentHeader):
        raise ValueError(f"not a content header: {decoded!r}")
    return decoded


def _salvaged(whole: bytes, channel: int, exc: BaseException) -> bytes:
    """A content-header frame pamqp decodes, made of ``whole``, which it could not (``exc``)."""
    problem = f"{type(exc).__name__}: {exc}"
    payload = whole[_HEAD.size : -1]
    body_size = struct.unpack_from(">Q", payload, 4)[0]
    properties, dropped = _salvage(payload[12:])
    headers = properties.headers if isinstance(properties.headers, dict) else {}
    table, _ = writable(headers)
    why = f"{', '.join(dropped) or 'properties'} dropped ({problem})"[:4000]
    properties.headers = table | {UNREADABLE: why}
    try:
        return frame.marshal(header.ContentHeader(0, body_size, properties), channel)
    except Exception:  # what decoded does not write back: keep only the reason
        bare = spec.Basic.Properties(headers={UNREADABLE: why})
        return frame.marshal(header.ContentHeader(0, body_size, bare), channel)


def _salvage(data: bytes) -> tuple[spec.Basic.Properties, list[str]]:
    """Decode the properties one by one: those that fail (and any after one whose
    size cannot be read) are left out and named."""
    properties = spec.Basic.Properties()
    dropped: list[str] = []
    try:
        offset, flags = content_flags(data)
    except ValueError:
        return properties, ["every property"]
    data = data[offset:]
    for name in properties.__slots__:
        if not flags & properties.flags[name]:
            continue
        kind = properties.amqp_type(name)
        try:
            used, value = decode.by_type(data, kind)
            setattr(properties, name, value)
        except Exception:
            dropped.append(name)
            size = _size(data, kind)
            if size is None:
                dropped.append("the properties after it")
                break
            used = size
        data = data[used:]
    properties.cluster_id = ""  # deprecated: pamqp refuses to write one
    return properties, dropped


def _size(data: bytes, kind: str) -> int | None:
    """How many bytes a property of AMQP type ``kind`` takes at the start of ``data``."""
    try:
        if kind == "shortstr":
            return 1 + data[0]
        if kind in ("longstr", "table"):
            return 4 + int(struct.unpack_from(">I", data)[0])
    except (IndexError, struct.error):
        return None
    return _SIZES.get(kind)
