"""The scheduler's lease: one worker at a time enqueues ticks.

The lease is one record, ``schedule:leader``, whose value names its holder
(``host:pid:token``) and whose time to live is the lease. A worker takes it when
it is free or expired, or renews it when it is its own, with one ``put_if``
each: two workers never hold it at once. A holder renews it every third of the
lease; one that dies (or loses the store) holds it at most one lease longer.
"""

from __future__ import annotations

import os
import socket

from hurtle.records import RecordStore

LEADER_KEY = "schedule:leader"
LEASE = 15.0  # seconds a leader holds the lease without renewing it (hurtle worker --schedule-lease)


class Lease:
    """This process's claim on the scheduler's lease."""

    def __init__(self, store: RecordStore, seconds: float = LEASE) -> None:
        self.store = store
        self.seconds = seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}".encode()
        self.held = False

    async def acquire(self) -> bool:
        """Take or renew the lease; True while it is ours. One round trip while
        it is (a renewal), two when it is not."""
        store, holder = self.store, self.holder
        self.held = await store.put_if(LEADER_KEY, holder, self.seconds, current=holder) or (
            await store.put_if(LEADER_KEY, holder, self.seconds, current=None)
        )
        return self.held

    async def release(self) -> None:
        """Give the lease up at a clean stop, so another worker takes over at once."""
        if self.held:
            self.held = False
            # A short time to live rather than a delete: only a put_if can be
            # sure the lease is still ours.
            await self.store.put_if(LEADER_KEY, self.holder, 0.001, current=self.holder)


def leader_name(value: bytes | None) -> str | None:
    """The holder of a lease value as ``host:pid``; None for none."""
    if value is None:
        return None
    return value.decode(errors="replace").rsplit(":", 1)[0]
