"""What the ``io`` workload's tasks talk to, the one client per process they use, and the count check.

A target is opened for each run and closed after it (``open_target``):

- ``redis``: a key of its own (``hurtlebench:io:<hex>``) on a Redis on loopback,
  127.0.0.1:6379 unless told otherwise; each task INCRs it; deleted after the run.
- ``http``: ``CountingServer``, started by the bench on 127.0.0.1 in a thread of
  its own process; each task GETs ``/``; the server counts the requests.

The worker processes learn the target from the environment (``URL_ENV``,
``KEY_ENV``), as they learn where to write their run records. Each process
makes its client lazily, once, on its first task (``Clients``): sync
redis-py or ``httpx.Client`` for ``def`` tasks, ``redis.asyncio`` or
``httpx.AsyncClient`` for ``async def`` ones. A client per call would pay a
connection (and a pool) per task, the mistake the bench must not make; every
client made writes a marker file, and a run is verified only if the target
counted exactly N round trips and no process made more than one client.

Why the HTTP server is a bare ``asyncio.Protocol``, not a library server: it
shares the machine's cores with the workers it serves, so it must cost as
little as possible. Measured on a 2-core VM, four threads GETting with one
``httpx.Client``: this protocol 28 us of server CPU per request, aiohttp's
web server (already installed with the peers) 86 us. It answers only what the
bench's clients send: GET requests without a body, kept alive, pipelined or not.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from hurtle.bench.result import RunResult
from hurtle.bench.runner import RECORDS_ENV
from hurtle.errors import ConfigurationError
from hurtle.urls import display_url

URL_ENV = "HURTLE_BENCH_IO_URL"  # redis://... (INCR KEY_ENV) or http://127.0.0.1:PORT/ (GET)
KEY_ENV = "HURTLE_BENCH_IO_KEY"
TARGETS = ("redis", "http")
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
_KEY_PREFIX = "hurtlebench:io:"  # holds "hurtlebench", as every key a bench run leaves
_MARK = "client-{pid}.mark"
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
_END = b"\r\n\r\n"
_START_TIMEOUT_S = 10.0


# -- the HTTP server ---------------------------------------------------------------


class _Counting(asyncio.Protocol):
    """One connection: a request ends at its blank line; each is answered 200 and counted."""

    def __init__(self, server: CountingServer) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        ends = buffer.count(_END)
        if ends and self._transport is not None:
            self._server.requests += ends
            self._transport.write(_RESPONSE * ends)
            buffer = buffer[buffer.rfind(_END) + len(_END):]
        self._buffer = buffer


class CountingServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request 200 and counts them.

    Runs an event loop (uvloop when installed) in a daemon thread: the process
    that starts it only waits on the worker while it serves.
    """

    def __init__(self) -> None:
        self.requests = 0  # written by the server's thread alone
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Listen on a free port; the server's URL."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="hurtle-bench-http",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or not self.url:
            raise ConfigurationError("--io http: the bench's HTTP server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT_S)

    def _serve(self, ready: threading.Event) -> None:
        loop = _new_loop()
        self._loop = loop
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: _Counting(self), "127.0.0.1", 0, backlog=1024)
            )
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/"
            ready.set()
            loop.run_forever()
            server.close()
        finally:
            ready.set()
            loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- the target of a run ---------------------------------------------------------------


@dataclass
class Target:
    """An open target: what the workers need to reach it, and how to read its count."""

    kind: str  # redis | http
    url: str
    key: str = ""  # redis: the key the tasks INCR
    server: CountingServer | None = None
    env: dict[str, str] = field(default_factory=dict)

    def count(self) -> int:
        """Round trips the target saw: the key's value, or the requests the server answered."""
        if self.server is not None:
            return self.server.requests
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            value = client.get(self.key)
        finally:
            client.close()
        return int(value) if value is not None else 0

    def inspect(self, folder: Path, result: RunResult, processes: int) -> None:
        """Add the run's client count, and why its round trips or clients are wrong."""
        clients = count_clients(folder)
        result.extra["clients"] = clients
        result.problems += check_round_trips(self.kind, self.count(), result.n)
        result.problems += check_clients(clients, processes, result.ran)


def describe(kind: str, redis_url: str) -> str:
    """A run's I/O in a line, for the header."""
    if kind == "http":
        return ("each task: one GET to an HTTP server the bench runs on 127.0.0.1 (an asyncio"
                " protocol that counts requests); one httpx client per worker process")
    return (f"each task: one INCR on a key of its own on {display_url(redis_url)};"
            " one redis-py client per worker process")


def check_reachable(kind: str, redis_url: str) -> None:
    """A Redis that does not answer, or a client library not installed: a one-line error."""
    if kind == "http":
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise ConfigurationError("--io http needs httpx: pip install 'hurtle[bench]'") from None
        return
    try:
        import redis
    except ImportError:
        raise ConfigurationError("--io redis needs redis-py: pip install 'hurtle[redis]'") from None
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        where = display_url(redis_url)
        raise ConfigurationError(f"--io redis: no Redis answers at {where} ({exc}); see --io-redis") from None


@contextmanager
def open_target(kind: str, redis_url: str) -> Iterator[Target]:
    """The run's target, fresh, closed after the run: the key deleted, the server stopped."""
    if kind == "http":
        server = CountingServer()
        url = server.start()
        try:
            yield Target("http", url, server=server, env={URL_ENV: url})
        finally:
            server.stop()
        return
    import redis

    key = f"{_KEY_PREFIX}{secrets.token_hex(5)}"
    try:
        yield Target("redis", redis_url, key=key, env={URL_ENV: redis_url, KEY_ENV: key})
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(key)
        finally:
            client.close()


def check_round_trips(kind: str, counted: int, n: int) -> list[str]:
    """Why the target's count is wrong; empty when it saw exactly one round trip per task."""
    if counted == n:
        return []
    what = "the HTTP server answered" if kind == "http" else "the Redis key counts"
    return [f"{what} {counted} round trip(s) for {n} task(s)"]


def check_clients(made: int, processes: int, ran: int) -> list[str]:
    """Why the client count is wrong: more than one per worker process, or none for tasks that ran."""
    if made == 0 and ran:
        return ["tasks ran but no client was counted"]
    if made > processes:
        return [f"{made} clients made by {processes} worker process(es): more than one per process"]
    return []


def count_clients(folder: Path) -> int:
    return len(list(folder.glob(_MARK.format(pid="*"))))


# -- the tasks' side: one client per process ---------------------------------------


class _SyncClient(Protocol):
    def hit(self) -> None: ...


class _AsyncClient(Protocol):
    async def hit(self) -> None: ...


class _RedisSync:
    def __init__(self, url: str, key: str) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url)
        self._key = key

    def hit(self) -> None:
        self._client.incr(self._key)


class _RedisAsync:
    def __init__(self, url: str, key: str) -> None:
        import redis.asyncio

        self._client: Any = redis.asyncio.Redis.from_url(url)
        self._key = key

    async def hit(self) -> None:
        await self._client.incr(self._key)


def _http_limits() -> Any:
    import httpx

    # Keep every connection the pool opens: httpx keeps 20 of its 100 by default, and a
    # process with more requests in flight would open and close connections per request.
    return httpx.Limits(max_connections=100, max_keepalive_connections=100)


class _HttpSync:
    def __init__(self, url: str) -> None:
        import httpx

        self._client = httpx.Client(base_url=url, limits=_http_limits())

    def hit(self) -> None:
        self._client.get("/").raise_for_status()


class _HttpAsync:
    def __init__(self, url: str) -> None:
        import httpx

        self._client = httpx.AsyncClient(base_url=url, limits=_http_limits())

    async def hit(self) -> None:
        (await self._client.get("/")).raise_for_status()


class Clients:
    """This process's clients, each made on its first use; a forked child makes its own."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._sync: _SyncClient | None = None
        self._async: _AsyncClient | None = None
        self._lock = threading.Lock()  # sync tasks: several threads may arrive at once

    def sync(self) -> _SyncClient:
        client = self._sync
        if client is not None:  # the hot path: one attribute read
            return client
        with self._lock:
            if self._sync is None:
                url, key = _from_env()
                self._sync = _HttpSync(url) if url.startswith("http") else _RedisSync(url, key)
                _mark_made()
            return self._sync

    def async_(self) -> _AsyncClient:
        """Made without an await, so two coroutines of one loop cannot both make one."""
        client = self._async
        if client is None:
            url, key = _from_env()
            client = _HttpAsync(url) if url.startswith("http") else _RedisAsync(url, key)
            self._async = client
            _mark_made()
        return client


def _from_env() -> tuple[str, str]:
    return os.environ.get(URL_ENV, DEFAULT_REDIS), os.environ.get(KEY_ENV, f"{_KEY_PREFIX}unset")


def _mark_made() -> None:
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        with suppress(OSError):  # a count lost here fails the check, not the task
            (Path(folder) / _MARK.format(pid=os.getpid())).write_text(f"{time.time()}\n")


clients = Clients()


def round_trip() -> None:
    """The ``def`` tasks' body: one round trip on this process's sync client."""
    clients.sync().hit()


async def round_trip_async() -> None:
    """The ``async def`` tasks' body: one round trip on this process's async client."""
    await clients.async_().hit()
