"""The result store contract: results keyed by task id, kept for a time to live.

A rerun of the same task (at least once delivery) overwrites the same key.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Sequence


class ResultStore(abc.ABC):
    """Stores encoded ``Result`` records (bytes) by task id."""

    @abc.abstractmethod
    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Write every (task id, record) pair, each kept ``ttl`` seconds."""

    @abc.abstractmethod
    async def get(self, task_id: str) -> bytes | None:
        """The record, or None when there is none (yet, or any more)."""

    async def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Wait up to ``timeout`` seconds (None: forever) for the record.

        This default polls with a growing interval (1 ms to 50 ms), for stores
        that cannot notify; stores that can override it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.001
        while True:
            record = await self.get(task_id)
            if record is not None:
                return record
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                interval = min(interval, remaining)
            await asyncio.sleep(interval)
            interval = min(interval * 2, 0.05)

    @abc.abstractmethod
    async def forget(self, task_ids: Sequence[str]) -> None:
        """Delete results now."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""
