"""The one place that touches aiormq's (and pamqp's) internals, checked against the version.

Written for aiormq ``SUPPORTED`` (lowest and the next major version, excluded);
pyproject.toml bounds the extra the same way. Outside them a warning says so at
import, and the batch publish falls back to ``basic_publish`` message by
message (slower, never wrong). ``tests/unit/test_amqp_compat.py`` checks every
assumption below against the installed aiormq; the broker's integration tests
check that the fast path is taken.

What is used:

- the batch publish (``publish.py``, its ``write_chunk`` here) does what
  ``basic_publish`` does under the channel's lock, with the same internals:
  ``CHANNEL_INTERNALS`` and ``ChannelFrame.marshall``. It leaves out ``basic_publish``'s routing-key length
  check (hurtle's keys are queue names, which RabbitMQ bounds the same) and its
  ``_raise_on_channel_close`` scope (a closing channel fails the write's drain
  future, and the confirms are cancelled with it);
- the acks of one flush (``acks.py``, its ``write_acks`` here) go out as one
  write of several ``Basic.Ack`` frames: straight to the socket's writer (which
  ``frames.SalvagingTransport`` keeps) when aiormq's write queue is empty, else
  as one write-queue item, as ``basic_ack`` queues one;
- the salvaging reader (``frames.py``) plugs into aiormq's ``transport_factory``
  hook with its TCP and TLS factories, and reads a content header's property
  flags with pamqp's ``ContentHeader._get_flags``.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from pamqp import commands as spec
from pamqp import header
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from hurtle.brokers.versions import in_range

__all__ = [
    "SUPPORTED", "Outgoing", "TCPTransportFactory", "TLSTransportFactory", "TransportFactory",
    "assumptions", "content_flags", "fast_path", "write_acks", "write_chunk",
]

#: (exchange, routing key, body, properties)
Outgoing = tuple[str, str, bytes, spec.Basic.Properties]

SUPPORTED = ((7, 2), (8, 0))  # aiormq versions: lowest included, highest excluded
CHANNEL_INTERNALS = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue",
                     "max_content_size", "create_future", "number", "publisher_confirms")


def supported(installed: str) -> bool:
    """Whether aiormq ``installed`` is one this module was written for; a warning says
    what happens when it is not."""
    return in_range("aiormq", installed, SUPPORTED, "RabbitMQ batches are published message by message")


VERSION = version("aiormq")
IN_RANGE = supported(VERSION)


def _marshall_fits() -> bool:
    """aiormq 7's ``ChannelFrame.marshall(channel_number, frames, drain_future)``."""
    method = getattr(ChannelFrame, "marshall", None)
    if method is None:
        return False
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return {"channel_number", "frames", "drain_future"} <= set(parameters)


MARSHALL_FITS = IN_RANGE and _marshall_fits()


def fast_path(channel: aiormq.Channel) -> bool:
    """True when ``channel`` has the aiormq internals a batch write needs."""
    return MARSHALL_FITS and all(hasattr(channel, name) for name in CHANNEL_INTERNALS)


def marshall(channel: Any, frames: list[Any], drained: Any) -> Any:
    """``frames`` as one write-queue item for ``channel``; ``drained`` resolves once written."""
    return ChannelFrame.marshall(channel_number=channel.number, frames=frames, drain_future=drained)


async def write_chunk(channel: Any, chunk: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
    """One chunk: tags assigned and frames queued under the channel's lock, as
    ``basic_publish`` does, so no other publish interleaves; undone if not queued."""
    confirming: bool = channel.publisher_confirms
    async with channel.lock:
        first = channel.delivery_tag + 1
        frames: list[Any] = []
        confirms: list[asyncio.Future[Any]] = []
        for exchange, key, body, properties in chunk:
            if confirming and not properties.message_id:
                properties.message_id = uuid.uuid4().hex  # a returned message is matched by its id
            frames.append(spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=confirming))
            frames.append(ContentHeader(properties=properties, body_size=len(body)))
            frames.extend(_split(body, channel.max_content_size))
        if confirming:
            for offset, (_, _, _, properties) in enumerate(chunk):
                confirms.append(_expect(channel, first + offset, properties.message_id))
        channel.delivery_tag += len(chunk)
        drained = channel.create_future()
        try:
            await channel.write_queue.put(marshall(channel, frames, drained))
        except BaseException:
            channel.delivery_tag = first - 1  # RabbitMQ saw none of these: their tags are free again
            for offset, future in enumerate(confirms):
                channel.confirmations.pop(first + offset, None)
                future.cancel()
            drained.cancel()
            raise
    await drained  # back pressure: the writer took it (a closing channel rejects it)
    return confirms


async def write_acks(
    channel: Any, upto: int | None, singles: Sequence[int], writer: asyncio.StreamWriter | None = None
) -> None:
    """A ``multiple`` ack up to ``upto`` (None: none) and single acks of ``singles``, in that
    order, as one write to the socket, where ``basic_ack`` makes one a frame. Written on
    ``writer`` at once when aiormq has nothing queued to write: nothing queued can then
    come after them that was meant to go before (an earlier ack), and the write skips a
    turn of aiormq's writer task, which a busy loop's acks waited for. Otherwise queued,
    and awaited as ``basic_ack`` awaits its write."""
    if channel.is_closed:
        raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
    frames: list[Any] = [spec.Basic.Ack(delivery_tag=upto, multiple=True)] if upto is not None else []
    frames.extend(spec.Basic.Ack(delivery_tag=tag) for tag in singles)
    if writer is not None and channel.write_queue.empty() and not writer.is_closing():
        writer.write(ChannelFrame.marshall(channel_number=channel.number, frames=frames).payload)
        return
    drained = channel.create_future()
    try:
        await channel.write_queue.put(marshall(channel, frames, drained))
    except BaseException:
        drained.cancel()
        raise
    await drained


def _expect(channel: Any, tag: int, message_id: str | None) -> asyncio.Future[Any]:
    """A confirmation future for ``tag``; a returned (unroutable) message finds it by its id."""
    future: asyncio.Future[Any] = channel.create_future()
    channel.confirmations[tag] = future
    if message_id:
        ids: dict[str, int] = channel.message_id_delivery_tag
        ids[message_id] = tag

        def forget(_: asyncio.Future[Any]) -> None:
            if ids.get(message_id) == tag:
                del ids[message_id]

        future.add_done_callback(forget)
    return future


def _split(body: bytes, limit: int) -> list[ContentBody]:
    if not body:
        return []
    return [ContentBody(body[i : i + limit]) for i in range(0, len(body), limit)]


def content_flags(data: bytes) -> tuple[int, int]:
    """(offset after the flags, property flags) of a content header's property list."""
    offset, flags = header.ContentHeader._get_flags(data)
    return int(offset), int(flags)


def assumptions() -> list[str]:
    """What of the above the installed aiormq and pamqp lack: empty when all holds.
    (The channel's own attributes are set in its ``__init__``: ``fast_path`` checks them.)"""
    missing = [f"Channel.{name}" for name in ("lock", "create_future") if not hasattr(aiormq.Channel, name)]
    if "publisher_confirms" not in inspect.signature(aiormq.Channel.__init__).parameters:
        missing.append("Channel(publisher_confirms=...)")
    if not _marshall_fits():
        missing.append("ChannelFrame.marshall(channel_number, frames, drain_future)")
    if not callable(getattr(header.ContentHeader, "_get_flags", None)):
        missing.append("pamqp ContentHeader._get_flags")
    if "create" not in vars(TransportFactory) or not issubclass(TCPTransportFactory, TransportFactory):
        missing.append("aiormq.connection.TransportFactory.create")
    connect = inspect.signature(aiormq.Connection.__init__).parameters
    if "transport_factory" not in connect:
        missing.append("Connection(transport_factory=...)")
    return missing

