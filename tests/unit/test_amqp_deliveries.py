"""Deliveries taken from the socket's frames before aiormq sees them (``amqp/deliveries.py``):
each whole delivery reaches the broker's callback, in order, however the bytes were cut;
every other frame reaches aiormq untouched and in order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

pytest.importorskip("aiormq")  # the amqp extra installs nothing on Python 3.10

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame, header
from pamqp.body import ContentBody

from hurtle.brokers.amqp.deliveries import Assembler, deliver_of
from hurtle.brokers.amqp.frames import _Reader, content_header
from hurtle.brokers.amqp.headers import UNREADABLE

SUB, PUB = 2, 1  # channel numbers: deliveries are taken from SUB only

short_str = st.text(max_size=60).filter(lambda text: len(text.encode()) <= 255)
exchange_name = st.from_regex(r"[a-zA-Z0-9\-_.:]{0,127}", fullmatch=True)  # what RabbitMQ allows


class Chunks:
    """The part of a ``StreamReader`` that ``_Reader`` reads: these chunks, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def read(self, n: int = -1) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def at_eof(self) -> bool:
        return not self._chunks


def delivery_frames(tag: int, body: bytes, channel: int = SUB, frame_max: int = 5) -> bytes:
    deliver = spec.Basic.Deliver(consumer_tag="hurtle.1", delivery_tag=tag, exchange="", routing_key="q")
    properties = spec.Basic.Properties(message_id=f"m{tag}", headers={"hurtle-deliveries": tag})
    out = frame.marshal(deliver, channel)
    out += frame.marshal(header.ContentHeader(0, len(body), properties), channel)
    for at in range(0, len(body), frame_max):
        out += frame.marshal(ContentBody(body[at : at + frame_max]), channel)
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


async def read_all(reader: _Reader, size: int) -> bytes:
    return await reader.readexactly(size) if size else b""


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.integers(min_value=0), max_size=12))
def test_deliveries_reach_the_callback_whole_and_in_order_and_aiormq_gets_the_rest(points: list[int]) -> None:
    cancel_ok = frame.marshal(spec.Basic.CancelOk(consumer_tag="hurtle.1"), SUB)
    elsewhere = delivery_frames(9, b"for aiormq", channel=PUB)  # another channel's: not ours
    stream = (
        delivery_frames(1, b"first, in three body frames")
        + elsewhere
        + delivery_frames(2, b"")
        + cancel_ok
        + delivery_frames(3, b"third")
    )
    got: list[Any] = []
    passed: list[bytes] = []

    async def scenario() -> None:
        reader = _Reader(Chunks(cut(stream, points)))  # type: ignore[arg-type]
        channel = object()
        reader.deliver_direct(SUB, Assembler(channel, SUB, got.append, content_header))
        passed.append(await read_all(reader, len(elsewhere)))
        passed.append(await read_all(reader, len(cancel_ok)))
        assert len(got) >= 2  # what came before the cancel-ok was delivered before aiormq saw it
        assert [m.channel for m in got] == [channel] * len(got)

    asyncio.run(scenario())

    assert passed == [elsewhere, cancel_ok]  # the cancel-ok after the deliveries sent before it
    assert [(m.delivery.delivery_tag, m.body) for m in got[:2]] == [
        (1, b"first, in three body frames"), (2, b""),
    ]
    assert got[0].header.properties.message_id == "m1"
    assert got[0].header.properties.headers == {"hurtle-deliveries": 1}


def test_a_delivery_whose_properties_do_not_decode_arrives_with_the_reason() -> None:
    # A timestamp past the year 9999: pamqp cannot decode it, RabbitMQ passes it on
    properties = spec.Basic.Properties(message_id="m")
    good = frame.marshal(header.ContentHeader(0, 2, properties), SUB)
    flags_at = 7 + 12
    bad = bytearray(good[:flags_at]) + bytes([0x00, 0x40]) + (2**63 - 1).to_bytes(8, "big") + b"\xce"
    bad[3:7] = (len(bad) - 8).to_bytes(4, "big")  # the payload's size, without head and end octet
    deliver = frame.marshal(spec.Basic.Deliver(consumer_tag="c", delivery_tag=7, routing_key="q"), SUB)
    stream = deliver + bytes(bad) + frame.marshal(ContentBody(b"hi"), SUB)
    got: list[Any] = []

    async def scenario() -> None:
        reader = _Reader(Chunks([stream]))  # type: ignore[arg-type]
        reader.deliver_direct(SUB, Assembler(object(), SUB, got.append, content_header))
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.readexactly(1)  # nothing is left for aiormq

    asyncio.run(scenario())

    (message,) = got
    assert message.body == b"hi"
    assert "timestamp" in message.header.properties.headers[UNREADABLE]


@settings(max_examples=200, deadline=None)
@given(
    consumer_tag=short_str, delivery_tag=st.integers(min_value=0, max_value=2**63 - 1),  # pamqp's range
    redelivered=st.booleans(), exchange=exchange_name, routing_key=short_str,
)
def test_a_basic_deliver_decodes_as_pamqp_decodes_it(
    consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str, routing_key: str
) -> None:
    sent = spec.Basic.Deliver(
        consumer_tag=consumer_tag, delivery_tag=delivery_tag, redelivered=redelivered,
        exchange=exchange, routing_key=routing_key,
    )
    whole = frame.marshal(sent, SUB)

    ours = deliver_of(whole, 0, len(whole))
    theirs = frame.unmarshal(whole)[2]

    fields = ("consumer_tag", "delivery_tag", "redelivered", "exchange", "routing_key")
    assert [getattr(ours, name) for name in fields] == [getattr(theirs, name) for name in fields]
