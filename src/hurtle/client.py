"""``Client``: how an App talks to its broker and result store. ``Task.send``
encodes and enqueues through it; ``Handle`` looks results up through it.

It keeps one connection per event loop per process. Async callers
(``send_async``, the worker) use the connection of their running loop. Sync
callers (``send``, ``Handle.result``) hand their coroutine to a private loop on
a daemon thread, the *portal*, so there is one implementation and a thin sync
facade (never two mirror clients).

After ``fork`` a child must not reuse its parent's connections or threads: every
lookup checks the pid and starts afresh in a new process, the way redis-py's
pool does in ``_checkpid``: one client per process, made after fork (a pool built per
request once opened a connection per request and timed out under load).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hurtle.brokers import Broker, Message, from_url
from hurtle.envelope import Envelope, encode
from hurtle.errors import ConfigurationError, MessageTooLarge
from hurtle.loops import new_event_loop
from hurtle.records import RecordStore
from hurtle.results import ResultStore
from hurtle.schedule.unique import UNIQUE_HEADER, claim, release
from hurtle.urls import SecretURL

T = TypeVar("T")


@dataclass
class Connection:
    """What one event loop uses: a broker and, when configured, a result store;
    and the record store of whichever of the two keeps records (unique keys,
    cancel marks, progress), None when neither does."""

    broker: Broker
    results: ResultStore | None
    records: RecordStore | None = None

    async def close(self) -> None:
        await self.broker.close()
        if self.results is not None and self.results is not self.broker.result_store():  # closed with it
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


class ClientSettings(Protocol):
    """What a ``Client`` reads from its app, at each use (an ``App`` is one)."""

    @property
    def broker_url(self) -> SecretURL: ...
    @property
    def results_url(self) -> SecretURL | None: ...

    visibility_timeout: float
    secret_key: bytes | None
    max_message_bytes: int


class Client:
    """An app's sending and result lookup: encode, enqueue, find results. Its
    connections are per event loop, and reset after fork."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, Connection] = {}
        self._portal: Portal | None = None

    # -- sending -------------------------------------------------------------

    def encode(self, envelopes: Sequence[Envelope]) -> list[Message]:
        """The messages to enqueue: signed with the app's key, each within its
        ``max_message_bytes`` (``MessageTooLarge`` otherwise)."""
        settings = self.settings
        secret_key, limit = settings.secret_key, settings.max_message_bytes
        messages = []
        for envelope in envelopes:
            body = encode(envelope, secret_key)
            if len(body) > limit:
                raise MessageTooLarge(
                    f"task {envelope.task}: message is {len(body)} bytes, over the app's"
                    f" max_message_bytes={limit}; pass a reference, not the data"
                )
            messages.append(Message(envelope.id, envelope.queue, body, envelope.eta))
        return messages

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Enqueue ``envelopes`` in one round trip, from sync code."""
        messages = self.encode(envelopes)  # encode errors surface in the caller's thread
        self.run_sync(self._enqueue(messages))

    async def send_async(self, envelopes: Sequence[Envelope]) -> None:
        """Enqueue ``envelopes`` in one round trip, on the running loop."""
        messages = self.encode(envelopes)
        await self.connection().broker.enqueue(messages)

    async def _enqueue(self, messages: list[Message]) -> None:
        await self.connection().broker.enqueue(messages)

    def send_unique(self, envelopes: Sequence[Envelope], unique_for: float) -> list[str]:
        """``send_unique_async`` from sync code."""
        messages = self.encode(envelopes)
        return self.run_sync(self._send_unique(envelopes, messages, unique_for))

    async def send_unique_async(self, envelopes: Sequence[Envelope], unique_for: float) -> list[str]:
        """Enqueue each envelope whose unique key (``hurtle-unique``) it claims, in
        one round trip; the task id each send stands for: its own, or that of the
        task holding its key (``hurtle.schedule.unique``)."""
        return await self._send_unique(envelopes, self.encode(envelopes), unique_for)

    async def _send_unique(
        self, envelopes: Sequence[Envelope], messages: list[Message], unique_for: float
    ) -> list[str]:
        connection = self.connection()
        records = connection.records
        if records is None:
            raise ConfigurationError("unique_key= and id= need a store that keeps records")
        ids: list[str] = []
        claimed: list[tuple[str, str]] = []
        won: list[Message] = []
        for envelope, message in zip(envelopes, messages, strict=True):
            header = envelope.headers[UNIQUE_HEADER]
            holder = await claim(records, header, envelope.id, unique_for)
            ids.append(envelope.id if holder is None else holder)
            if holder is None:
                claimed.append((header, envelope.id))
                won.append(message)
        try:
            await connection.broker.enqueue(won)
        except BaseException:
            # Not enqueued (as far as we know): free the keys rather than have them
            # point at nothing until unique_for runs out.
            for header, task_id in claimed:
                with contextlib.suppress(Exception):
                    await release(records, header, task_id)
            raise
        return ids

    # -- connections -----------------------------------------------------------

    def results(self) -> ResultStore | None:
        """The running loop's result store (None: the app keeps no results)."""
        return self.connection().results

    def new_connection(self) -> Connection:
        """A connection of its own, with the app's settings now; the caller closes it."""
        settings = self.settings
        return make_connection(settings.broker_url, settings.results_url, settings.visibility_timeout)

    def _check_pid(self) -> None:
        # After fork the parent's sockets, threads and loops are not ours: forget
        # them without closing (closing would disturb the parent's connections).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._by_loop = {}
            self._portal = None
            self._lock = threading.Lock()

    def connection(self) -> Connection:
        """The connection of the running loop, made on first use."""
        self._check_pid()
        loop = asyncio.get_running_loop()
        with self._lock:
            connection = self._by_loop.get(loop)
            if connection is None:
                # Loops come and go (one per test, one per asyncio.run): drop dead ones.
                self._by_loop = {k: v for k, v in self._by_loop.items() if not k.is_closed()}
                connection = self._by_loop[loop] = self.new_connection()
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

    def reset(self) -> None:
        """``close``, and forget every loop's connection: the next call opens new
        ones with the settings as they are then (after the app's URLs change)."""
        self.close()
        with self._lock:
            self._by_loop = {}


def make_connection(
    broker_url: str | SecretURL, results_url: str | SecretURL | None, visibility_timeout: float
) -> Connection:
    broker = from_url(broker_url, visibility_timeout=visibility_timeout)
    if results_url is None:
        return Connection(broker, broker.result_store(), broker.record_store())
    results_broker = from_url(results_url, visibility_timeout=visibility_timeout)
    # The result store's broker lends its records on the same connection: closing
    # the result store closes them too.
    records = broker.record_store() or results_broker.record_store()
    return Connection(broker, results_broker.result_store(), records)
