"""aiormq's internals that hurtle uses, all in ``brokers/amqp/compat.py``: they hold for
the installed aiormq, the batch publish takes its fast path, and an aiormq it was
not written for is said so and publishes message by message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

aiormq = pytest.importorskip("aiormq")  # the amqp extra installs nothing on Python 3.10

from pamqp import commands as spec  # noqa: E402

from hurtle.brokers.amqp import acks, compat, publish  # noqa: E402
from tests.amqp_server import shared_amqp_url  # noqa: E402


@pytest.fixture
async def channel() -> AsyncIterator[Any]:
    connection = await aiormq.connect(shared_amqp_url())
    opened = await connection.channel(publisher_confirms=True)
    yield opened
    await connection.close()


def test_the_installed_aiormq_has_everything_the_adapter_assumes() -> None:
    assert compat.IN_RANGE, f"aiormq {compat.VERSION} is outside {compat.SUPPORTED}"
    assert compat.assumptions() == []
    assert compat.MARSHALL_FITS


async def test_a_batch_is_published_in_one_write_with_the_installed_aiormq(
    channel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"hurtle-test-compat-{uuid.uuid4().hex}"
    await channel.queue_declare(queue, exclusive=True, auto_delete=True)
    assert compat.fast_path(channel)
    writes: list[int] = []
    write_chunk = compat.write_chunk

    async def counted(channel: Any, chunk: Any) -> Any:
        writes.append(len(chunk))
        return await write_chunk(channel, chunk)

    monkeypatch.setattr(publish, "write_chunk", counted)
    batch = [("", queue, str(i).encode(), spec.Basic.Properties()) for i in range(50)]
    assert await publish.publish_all(channel, batch) == [None] * 50
    assert writes == [50]
    declared = await channel.queue_declare(queue, passive=True)
    assert declared.message_count == 50


@pytest.mark.parametrize("fast", [True, False], ids=["one-write", "frame-by-frame"])
async def test_a_flush_s_acks_go_out_in_one_write_and_settle_exactly_the_tags_given(
    channel: Any, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    monkeypatch.setattr(compat, "MARSHALL_FITS", fast)
    queue = f"hurtle-test-compat-{uuid.uuid4().hex}"
    await channel.queue_declare(queue, auto_delete=False)
    batch = [("", queue, str(i).encode(), spec.Basic.Properties()) for i in range(5)]
    await publish.publish_all(channel, batch)
    unacked = acks.Unacked()
    tags = []
    for _ in range(5):
        got = await channel.basic_get(queue)
        unacked.add(got.delivery_tag)
        tags.append(got.delivery_tag)
    writes: list[tuple[int | None, list[int]]] = []
    write_acks = compat.write_acks

    async def counted(channel: Any, upto: int | None, singles: Any, writer: Any = None) -> None:
        writes.append((upto, list(singles)))
        await write_acks(channel, upto, singles, writer)

    monkeypatch.setattr(acks, "write_acks", counted)

    await unacked.ack(channel, [tags[0], tags[1], tags[3], tags[4]])  # the third still held

    assert writes == ([(tags[1], [tags[3], tags[4]])] if fast else [])
    await channel.close()  # what was not acked goes back: the third alone
    other = await channel.connection.channel()
    back = await _next_message(other, queue)
    left = await other.queue_declare(queue, passive=True)
    await other.queue_delete(queue)
    assert (back, left.message_count) == (b"2", 0)


async def test_acks_go_out_on_the_socket_at_once_when_nothing_is_queued_before_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a connection whose socket writer hurtle holds (as the broker's own), and 3 messages got
    from hurtle.brokers.amqp.frames import SalvagingTransport

    transport = SalvagingTransport("amqp")
    connection = await aiormq.connect(shared_amqp_url(), transport_factory=transport)
    channel = await connection.channel(publisher_confirms=True)
    queue = f"hurtle-test-compat-{uuid.uuid4().hex}"
    await channel.queue_declare(queue, auto_delete=False)
    batch = [("", queue, str(i).encode(), spec.Basic.Properties()) for i in range(3)]
    await publish.publish_all(channel, batch)
    unacked = acks.Unacked()
    unacked.writer = transport.writer
    tags = []
    for _ in range(3):
        got = await channel.basic_get(queue)
        unacked.add(got.delivery_tag)
        tags.append(got.delivery_tag)
    queued: list[Any] = []
    put = channel.write_queue.put

    async def counted(item: Any) -> None:
        queued.append(item)
        await put(item)

    monkeypatch.setattr(channel.write_queue, "put", counted)
    # When two of them are acked with nothing waiting in aiormq's write queue
    await unacked.ack(channel, [tags[0], tags[2]])
    # Then the acks did not go through the queue, and they settled exactly those two
    assert queued == []
    await channel.close()
    other = await connection.channel()
    back = await _next_message(other, queue)
    left = await other.queue_declare(queue, passive=True)
    await other.queue_delete(queue)
    await connection.close()
    assert (back, left.message_count) == (b"1", 0)


async def _next_message(channel: Any, queue: str) -> bytes:
    """The next message of ``queue``, waiting (RabbitMQ puts a closed channel's back on its own time)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        got = await channel.basic_get(queue, no_ack=True)
        if isinstance(got.delivery, spec.Basic.GetOk) or asyncio.get_running_loop().time() > deadline:
            return bytes(got.body)
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("installed", ["7.1.0", "8.0.0", "6.5"])
def test_an_aiormq_the_adapter_was_not_written_for_is_named_in_a_warning(installed: str) -> None:
    with pytest.warns(RuntimeWarning, match=f"aiormq {installed} is installed"):
        assert not compat.supported(installed)


@pytest.mark.parametrize("installed", ["7.2.0", "7.2.4", "7.9"])
def test_an_aiormq_within_the_bounds_is_supported(installed: str) -> None:
    assert compat.supported(installed)
