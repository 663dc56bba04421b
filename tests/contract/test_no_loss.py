"""A property: whatever batches come in, each message goes out once, in order."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hurtle.brokers import Broker

from .support import bodies, counts, messages


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    # The broker fixture outlives the examples on purpose: each uses a queue of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch_sizes=st.lists(st.integers(min_value=0, max_value=8), max_size=8),
    fetch_size=st.integers(min_value=1, max_value=5),
)
async def test_every_message_is_fetched_exactly_once_when_each_is_acked_at_once(
    broker: Broker, batch_sizes: list[int], fetch_size: int
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    sent: list[bytes] = []
    fetched: list[bytes] = []

    async def fetch_and_ack() -> bool:
        deliveries = await broker.fetch([queue], fetch_size, 0)
        await broker.ack(deliveries)
        fetched.extend(bodies(deliveries))
        return bool(deliveries)

    for size in batch_sizes:
        batch = [str(len(sent) + i).encode() for i in range(size)]
        await broker.enqueue(messages(queue, *batch))
        sent.extend(batch)
        await fetch_and_ack()
    while await fetch_and_ack():
        pass

    assert fetched == sent
    assert (await counts(broker, queue)).pending == 0
