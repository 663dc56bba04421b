"""Broker and result-store clients: one per event loop per process.

Async callers (``send_async``, the worker) use the client of their running loop.
Sync callers (``send``, ``Handle.result``) hand their coroutine to a private
loop on a daemon thread, the *portal*, so there is one implementation and a thin
sync facade (never two mirror clients).

After ``fork`` a child must not reuse its parent's connections or threads: every
lookup checks the pid and starts afresh in a new process, the way redis-py's
pool does in ``_checkpid`` (seed 001: one client per process, made after fork).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from hurtle.brokers import Broker, from_url
from hurtle.loops import new_event_loop
from hurtle.results import ResultStore
from hurtle.urls import SecretURL

T = TypeVar("T")


@dataclass
class Connection:
    """What one event loop uses: a broker and, when configured, a result store."""

    broker: Broker
    results: ResultStore | None

    async def close(self) -> None:
        await self.broker.close()
        if self.results is not None and self.results is not self.broker:  # type: ignore[comparison-overlap]
            await self.results.close()


class Portal:
    """An event loop on a daemon thread that runs coroutines for sync callers."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hurtle-portal", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a hurtle sync call was made from inside the sync portal")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)


class Clients:
    """The connections of one App, per event loop, reset after fork."""

    def __init__(self, make: Callable[[], Connection]) -> None:
        self._make = make
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, Connection] = {}
        self._portal: Portal | None = None

    def _check_pid(self) -> None:
        # After fork the parent's sockets, threads and loops are not ours: forget
        # them without closing (closing would disturb the parent's connections).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._by_loop = {}
            self._portal = None
            self._lock = threading.Lock()

    def for_running_loop(self) -> Connection:
        """The connection of the running loop, made on first use."""
        self._check_pid()
        loop = asyncio.get_running_loop()
        with self._lock:
            connection = self._by_loop.get(loop)
            if connection is None:
                # Loops come and go (one per test, one per asyncio.run): drop dead ones.
                self._by_loop = {k: v for k, v in self._by_loop.items() if not k.is_closed()}
                connection = self._by_loop[loop] = self._make()
            return connection

    def bind(self, connection: Connection) -> None:
        """Use ``connection`` for the running loop (the worker shares its own)."""
        self._check_pid()
        with self._lock:
            self._by_loop[asyncio.get_running_loop()] = connection

    def unbind(self) -> None:
        with self._lock:
            self._by_loop.pop(asyncio.get_running_loop(), None)

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal loop and wait for it."""
        self._check_pid()
        with self._lock:
            if self._portal is None:
                self._portal = Portal()
            portal = self._portal
        return portal.run(coro)

    def close(self) -> None:
        """Close the portal's connection and stop its thread."""
        self._check_pid()
        with self._lock:
            portal, self._portal = self._portal, None
        if portal is None:
            return
        connection = self._by_loop.pop(portal.loop, None)
        if connection is not None:
            portal.run(connection.close())
        portal.stop()


def make_connection(
    broker_url: str | SecretURL, results_url: str | SecretURL | None, visibility_timeout: float
) -> Connection:
    broker = from_url(broker_url, visibility_timeout=visibility_timeout)
    if results_url is None:
        return Connection(broker, broker.result_store())
    results_broker = from_url(results_url, visibility_timeout=visibility_timeout)
    return Connection(broker, results_broker.result_store())
