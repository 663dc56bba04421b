"""Unique tasks: ``task.options(unique_key=..., unique_for=...)`` and ``options(id=...)``.

A send with a unique key first claims the record ``unique:key:<key>`` (or
``unique:id:<id>`` for a caller-chosen task id) with ``put_if``, its value the
new task's id and its time to live ``unique_for``. The one sender that claims
it enqueues; every other finds the id there and gets a handle to that task
instead, enqueuing nothing. Two senders racing never both claim: ``put_if`` is
atomic in every store that keeps records.

The message carries the key in its ``hurtle-unique`` header. The worker gives
the key back when the task is done for good (succeeded, failed past its
retries, dead-lettered or cancelled; not when it is retried), with a
``put_if`` that only succeeds while the key still holds this task's id. A key
whose holder never finishes (its worker died and the message is still
waiting, or the message was lost between the claim and the enqueue because the
sender died there) is free again ``unique_for`` seconds after the claim at the
latest: hurtle does not look in the broker for the claimed message (RabbitMQ
cannot, and on Redis it costs a scan of the queue), it bounds the wait instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from hurtle.envelope import Envelope
from hurtle.errors import BrokerError, ConfigurationError
from hurtle.records import RecordStore

#: The envelope header that names a message's unique key (``docs/protocol.md``).
UNIQUE_HEADER = "hurtle-unique"
#: Seconds a unique key is held when ``unique_for`` is not given: an upper bound
#: on how long a task whose worker died can keep its key.
DEFAULT_UNIQUE_FOR = 3600.0
PREFIX = "unique:"
_RELEASED = b""  # what a given-back key holds for the moment before it expires
_RELEASE_TTL = 0.001  # a put_if can replace a value, not delete it: a near-instant expiry instead
_CLAIM_TRIES = 20  # a key freed and taken again between our looks, over and over: give up

log = logging.getLogger("hurtle.worker")


def header_value(unique_key: str | None, task_id: str | None) -> str | None:
    """What ``UNIQUE_HEADER`` holds for a send: ``key:<key>``, else ``id:<id>``,
    so a unique key and a task id of the same text never collide."""
    if unique_key is not None:
        return f"key:{unique_key}"
    if task_id is not None:
        return f"id:{task_id}"
    return None


def check_unique(unique_key: object, unique_for: object, task_id: object) -> None:
    """Refuse a bad ``unique_key``, ``unique_for`` or ``id`` where they are given."""
    for name, value in (("unique_key", unique_key), ("id", task_id)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 512):
            raise ConfigurationError(
                f"{name} must be a non-empty str of at most 512 characters, not {value!r}"
            )
    if unique_for is not None:
        valid = (
            isinstance(unique_for, (int, float)) and not isinstance(unique_for, bool)
            and math.isfinite(unique_for) and unique_for > 0
        )
        if not valid:
            raise ConfigurationError(f"unique_for must be a number of seconds > 0, not {unique_for!r}")
        if unique_key is None and task_id is None:
            raise ConfigurationError("unique_for= goes with unique_key= or id=")


def record_key(header: str) -> str:
    return PREFIX + header


async def claim(store: RecordStore, header: str, task_id: str, unique_for: float) -> str | None:
    """Claim the key for ``task_id``; None when claimed, else the id of the task
    that holds it (queued or running)."""
    key, value = record_key(header), task_id.encode()
    current: bytes | None = None
    for _ in range(_CLAIM_TRIES):
        if await store.put_if(key, value, unique_for, current=current):
            return None
        holder = await store.get(key)
        if holder:  # held: the caller gets that task
            return holder.decode(errors="replace")
        current = holder  # freed meanwhile (None) or just given back (b""): claim again
    raise BrokerError(f"could not claim unique key {header!r}: it changed hands {_CLAIM_TRIES} times")


async def release(store: RecordStore, header: str, task_id: str) -> None:
    """Give the key back if ``task_id`` still holds it (a key that expired and was
    claimed by a newer task is left to that one)."""
    await store.put_if(record_key(header), _RELEASED, _RELEASE_TTL, current=task_id.encode())


class Releaser:
    """A worker process's give-backs: started from the settling code, which does
    not wait, on the record store it opens when first needed."""

    def __init__(self, store: Callable[[], RecordStore | None]) -> None:
        self._store = store
        self._pending: set[asyncio.Task[None]] = set()

    def finished(self, envelope: Envelope) -> None:
        """``envelope``'s task is done for good: release its key, if it has one."""
        header = envelope.headers.get(UNIQUE_HEADER)
        if header is None:
            return
        task = asyncio.get_running_loop().create_task(self._release(header, envelope.id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, header: str, task_id: str) -> None:
        store = self._store()
        if store is None:
            return
        try:
            await release(store, header, task_id)
        except Exception as exc:  # the key then frees itself after unique_for
            log.warning("could not release unique key %r of task %s (%s: %s)",
                        header, task_id, type(exc).__name__, exc)

    async def wait(self) -> None:
        """Let the give-backs under way finish (at a worker's stop)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5.0)
