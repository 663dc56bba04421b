"""Deliveries on the consuming channel, put together as the socket is read.

aiormq passes each frame it reads through an asyncio queue to the channel's
reader task, which decodes it with pamqp, joins a message's body frames in a
``BytesIO`` and starts an asyncio task per delivery to run the consumer's
callback. On a RabbitMQ worker those steps took about 60% of the process's CPU,
and each message cost the worker's event loop about five times what it costs on
Redis (docs/benchmarks.md, "RabbitMQ's share").

``Assembler`` takes the consuming channel's frames from ``frames._Reader``
before aiormq sees them: a ``basic.deliver`` method frame, its content header
and its body frames become one ``DeliveredMessage``, handed to the broker's
callback at once, in the order they came. A ``basic.cancel-ok`` read after
them reaches aiormq only after they were buffered, so a cancel still means
"everything sent before it is here" (``fetch.py``). Every other frame of the
channel (a get-ok and its content, a cancel from RabbitMQ, a close) goes to
aiormq as before. A content header that pamqp cannot decode is salvaged as for
aiormq (``frames.content_header``): the message is dead-lettered with the reason.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp import constants, frame
from pamqp.header import ContentHeader

log = logging.getLogger("hurtle.amqp")

_DELIVER = spec.Basic.Deliver.index  # class id << 16 | method id, as a method frame starts
_INDEX = struct.Struct(">I")
_TAG_AND_FLAGS = struct.Struct(">QB")  # delivery tag, then the octet that holds "redelivered"
_HEAD_SIZE = 7  # frame type, channel, payload size

#: Decodes a whole content-header frame, salvaging what pamqp cannot read (``frames``).
HeaderDecoder = Callable[[bytes, int], ContentHeader]
Sink = Callable[[DeliveredMessage], None]


def deliver_of(raw: bytearray | bytes, start: int, end: int) -> spec.Basic.Deliver:
    """The ``basic.deliver`` method frame ``raw[start:end]``, decoded. Its fields are
    fixed (consumer tag, delivery tag, redelivered, exchange, routing key), and read
    here in a quarter of the time pamqp's general decoder takes (11 us against 2.7 us a
    frame, most of it pamqp's own check of the fields, kept); anything unusual (a name
    that is not UTF-8) is left to pamqp, which says what it makes of it."""
    try:
        at = start + _HEAD_SIZE + _INDEX.size
        size = raw[at]
        consumer_tag = bytes(raw[at + 1 : at + 1 + size]).decode()
        at += 1 + size
        delivery_tag, flags = _TAG_AND_FLAGS.unpack_from(raw, at)
        at += _TAG_AND_FLAGS.size
        size = raw[at]
        exchange = bytes(raw[at + 1 : at + 1 + size]).decode()
        at += 1 + size
        size = raw[at]
        routing_key = bytes(raw[at + 1 : at + 1 + size]).decode()
        if at + 1 + size != end - 1:  # not the whole payload: let pamqp say what it is
            raise ValueError("unexpected basic.deliver length")
        return spec.Basic.Deliver(
            consumer_tag=consumer_tag, delivery_tag=delivery_tag, redelivered=bool(flags & 1),
            exchange=exchange, routing_key=routing_key,
        )
    except (ValueError, IndexError, struct.error):  # UnicodeDecodeError is a ValueError
        deliver = frame.unmarshal(bytes(raw[start:end]))[2]
        if not isinstance(deliver, spec.Basic.Deliver):
            raise ValueError(f"not a basic.deliver: {deliver!r}") from None
        return deliver


class Assembler:
    """One channel's deliveries, frame by frame; each whole one goes to ``sink``."""

    def __init__(self, channel: Any, number: int, sink: Sink, decode_header: HeaderDecoder) -> None:
        self._channel = channel  # what ``DeliveredMessage.channel`` names: the aiormq channel
        self._number = number
        self._sink = sink
        self._decode_header = decode_header
        self._deliver: spec.Basic.Deliver | None = None
        self._header: ContentHeader | None = None
        self._body: list[bytes] = []
        self._received = 0

    def take(self, kind: int, raw: bytearray, start: int, end: int) -> bool:
        """True when the whole frame ``raw[start:end]`` belongs to a delivery (it is then
        used here, and aiormq must not see it); False for any other frame."""
        if self._deliver is None:
            if kind != constants.FRAME_METHOD or _INDEX.unpack_from(raw, start + _HEAD_SIZE)[0] != _DELIVER:
                return False
            self._deliver = deliver_of(raw, start, end)
            return True
        if self._header is None:
            if kind != constants.FRAME_HEADER:  # AMQP sends a delivery's frames in a row
                raise ValueError(f"a frame of type {kind} where a delivery's content header belongs")
            self._header = self._decode_header(bytes(raw[start:end]), self._number)
            if not self._header.body_size:
                self._emit()
            return True
        if kind != constants.FRAME_BODY:
            raise ValueError(f"a frame of type {kind} where a delivery's body belongs")
        part = bytes(raw[start + _HEAD_SIZE : end - 1])
        self._body.append(part)
        self._received += len(part)
        if self._received >= self._header.body_size:
            self._emit()
        return True

    def _emit(self) -> None:
        deliver, header = self._deliver, self._header
        assert deliver is not None and header is not None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._deliver, self._header, self._body, self._received = None, None, [], 0
        message = DeliveredMessage(delivery=deliver, header=header, body=body, channel=self._channel)
        try:
            self._sink(message)
        except Exception:  # never into the socket's reader: it would close the connection
            log.exception("a delivery could not be buffered; it returns when the connection closes")
