"""The scheduler's lease: one worker at a time enqueues ticks.

The lease is one record, ``schedule:leader:<digest>``, whose value names its
holder (``host:pid:token``) and whose time to live is the lease. The digest is
of the app's schedule names (``leader_key``): two apps that share a broker elect
a leader each, rather than one app's leader starving the other's schedules.
During a rolling deploy that changes the schedules, the old and the new version
elect one each for a while; a schedule both send is then sent twice per tick,
and its copies are deduplicated as after a leader's crash (``ticks.py``). A worker takes it when
it is free or expired, or renews it when it is its own, with one ``put_if``
each: two workers never hold it at once. A holder renews it every third of the
lease; one that dies (or loses the store) holds it at most one lease longer.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable

from hurtle.records import RecordStore

LEADER_PREFIX = "schedule:leader:"
LEASE = 15.0  # seconds a leader holds the lease without renewing it (hurtle worker --schedule-lease)


class Lease:
    """This process's claim on the scheduler's lease."""

    def __init__(self, store: RecordStore, key: str, seconds: float = LEASE) -> None:
        self.store = store
        self.key = key
        self.seconds = seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}".encode()
        self.held = False

    async def acquire(self) -> bool:
        """Take or renew the lease; True while it is ours. One round trip while
        it is (a renewal), two when it is not."""
        store, key, holder = self.store, self.key, self.holder
        self.held = await store.put_if(key, holder, self.seconds, current=holder) or (
            await store.put_if(key, holder, self.seconds, current=None)
        )
        return self.held

    async def release(self) -> None:
        """Give the lease up at a clean stop, so another worker takes over at once."""
        if self.held:
            self.held = False
            # A short time to live rather than a delete: only a put_if can be
            # sure the lease is still ours.
            await self.store.put_if(self.key, self.holder, 0.001, current=self.holder)


def leader_key(schedules: Iterable[str]) -> str:
    """The lease's key for an app with these schedule names."""
    digest = hashlib.sha256("\n".join(sorted(schedules)).encode()).hexdigest()[:16]
    return LEADER_PREFIX + digest


def leader_name(value: bytes | None) -> str | None:
    """The holder of a lease value as ``host:pid``; None for none."""
    if value is None:
        return None
    return value.decode(errors="replace").rsplit(":", 1)[0]
