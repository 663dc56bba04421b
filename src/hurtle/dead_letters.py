"""Dead letters, put back or named: what ``hurtle dlq`` and the dashboard share."""

from __future__ import annotations

from collections.abc import Sequence

from hurtle.brokers import Broker, DeadLetter
from hurtle.brokers.base import BeforeMove, Requeued
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


async def requeue_and_forget(connection: Connection, ids: Sequence[str] | None) -> Requeued:
    """Requeue the dead letters ``ids`` name (every one when None), forgetting the
    failures stored for their tasks: the senders' ``result()`` and ``status()`` wait
    for the new run, not the old failure.

    Each failure is forgotten just before its dead letter moves, never after: a
    worker may run the task again at once, and its new result must not be forgotten
    with the old. The result store is connected first: an unreachable one stops the
    command before anything moved, not after."""
    results = connection.results
    forget: BeforeMove | None = None
    if results is not None:
        if isinstance(results, Broker) and results is not connection.broker:
            await results.connect()

        async def forget(task_ids: Sequence[str]) -> None:
            await results.forget(list(task_ids))

    if ids is None:
        return Requeued(await connection.broker.requeue_dead(None, forget))
    return await connection.broker.requeue_dead_by_id(ids, forget)
