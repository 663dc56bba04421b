"""Dead letters, put back or named: what ``hurtle dlq`` and the dashboard share."""

from __future__ import annotations

from collections.abc import Sequence

from hurtle.brokers import Broker, DeadLetter
from hurtle.brokers.base import Requeued
from hurtle.client import Connection
from hurtle.envelope import Envelope, decode


def envelope_of(letter: DeadLetter) -> Envelope | None:
    """The message a dead letter holds; None for a body that does not decode (not JSON,
    nested past the decoder's depth, not bytes at all): it is dead for that reason."""
    try:
        return decode(letter.body)
    except Exception:
        return None


def task_of(letter: DeadLetter) -> str | None:
    """The task a dead letter's body names; None where the body does not decode."""
    envelope = envelope_of(letter)
    return None if envelope is None else envelope.task


async def requeue_and_forget(connection: Connection, ids: Sequence[str]) -> Requeued:
    """Requeue, then forget the failures stored for the requeued tasks: their
    senders' ``result()`` and ``status()`` wait for the new run, not the old failure.
    The result store is connected first: an unreachable one stops the command before
    anything moved, not after."""
    if isinstance(connection.results, Broker) and connection.results is not connection.broker:
        await connection.results.connect()
    requeued = await connection.broker.requeue_dead_by_id(ids)
    if connection.results is not None and requeued.task_ids:
        await connection.results.forget(list(requeued.task_ids))
    return requeued
