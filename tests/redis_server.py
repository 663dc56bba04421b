"""Redis for tests: the shared server (``HURTLE_TEST_REDIS_URL``), a private one, or a cluster.

``shared_redis_url()`` is the one reachability check: with ``CI=true`` a Redis
that cannot be reached fails the test (CI must never go green by skipping);
elsewhere the test is skipped with the reason. ``RedisServer`` starts a
``redis-server`` of the test's own on a free loopback port, for fault tests that
kill or restart it. ``RedisCluster`` starts three cluster-enabled servers and
joins them (``redis-cli --cluster create``); without the binaries it is
unavailable in the same way, and one that does not come up fails the test.
``redis_cluster_url`` gives the contract suite one such cluster per session.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

ENV_URL = "HURTLE_TEST_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
START_LIMIT = 10.0  # seconds: a bound on a private server's start, never a sleep

_prefixes: list[tuple[str, str]] = []  # (server URL, key prefix) to delete at exit


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Redis is required, not skipped)")
    pytest.skip(reason)


@functools.cache
def _ping(url: str) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install 'hurtle[redis]')"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"no Redis at {url} ({exc}); set {ENV_URL}"
    return None


def shared_redis_url() -> str:
    """The shared Redis server's URL; skips (or fails under CI) when unreachable."""
    url = os.environ.get(ENV_URL, DEFAULT_URL)
    problem = _ping(url)
    if problem is not None:
        _unavailable(problem)
    return url


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with hurtle's ``prefix`` query parameter set; its keys deleted at exit."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"] + [("prefix", prefix)]
    _prefixes.append((urlunsplit(parts._replace(query="")), prefix))
    return urlunsplit(parts._replace(query=urlencode(query)))


def redis_url(tmp_path: Path, unique: str) -> str:
    """A contract-suite URL factory: the shared server, a key prefix of the test's own."""
    return with_prefix(shared_redis_url(), f"hurtle-test-{unique}")


def unique_redis_url() -> str:
    return with_prefix(shared_redis_url(), f"hurtle-test-{uuid.uuid4().hex}")


@atexit.register
def _delete_test_keys() -> None:
    if not _prefixes:
        return
    import redis

    for url, prefix in _prefixes:
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
            try:
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.unlink(*keys[start : start + 1000])
            finally:
                client.close()


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (the sockets are held until all are found)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, durable (AOF, fsync always) in ``directory``;
    listening on ``unix_socket`` as well when given one."""

    def __init__(self, directory: Path, *, unix_socket: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed")
        self.binary = str(binary)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.unix_socket = unix_socket
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
        ]
        if self.unix_socket is not None:
            command += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the server's stdout
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_LIMIT
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log_text = (self.directory / "redis.log").read_text()
                raise AssertionError(f"redis-server did not start: {log_text}")
            time.sleep(0.02)

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, socket_timeout=1.0)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the server and wait for it to end."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(START_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisCluster:
    """Three ``redis-server --cluster-enabled`` primaries on 127.0.0.1, no replicas and
    no persistence, joined with ``redis-cli --cluster create``; files in ``directory``.

    Each node gets its cluster bus port (``--cluster-port``) from ``free_ports`` too:
    the default, port + 10000, is past 65535 for a third of Linux's ephemeral ports.
    """

    SIZE = 3

    def __init__(self, directory: Path) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            _unavailable("redis-server and redis-cli are needed for a Redis Cluster")
        self.binary, self.cli = str(server), str(cli)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * self.SIZE)
        self.ports, self.bus_ports = ports[: self.SIZE], ports[self.SIZE :]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A hurtle broker URL: one seed node; the client finds the others."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        """Start the nodes, join them, and wait (bounded) until every node says ``cluster_state:ok``."""
        try:
            for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
                self._start_node(port, bus_port)
            for port in self.ports:
                self._wait(lambda port=port: self._info(port) is not None, f"node {port} to answer")
            create = subprocess.run(
                [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=START_LIMIT * 3, check=False,
            )
            if create.returncode != 0:
                raise AssertionError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")
            for port in self.ports:
                self._wait(lambda port=port: (self._info(port) or {}).get("cluster_state") == "ok",
                           f"cluster_state:ok on node {port}")
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int, bus_port: int) -> None:
        command = [
            self.binary, "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
            "--cluster-port", str(bus_port), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]
        with open(self.directory / f"redis-{port}.log", "ab") as log:
            self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_LIMIT
        while not condition():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "".join(p.read_text() for p in sorted(self.directory.glob("redis-*.log")))
                raise AssertionError(f"Redis Cluster: gave up waiting for {what}: {logs}")
            time.sleep(0.02)

    def _info(self, port: int) -> dict[str, Any] | None:
        """``CLUSTER INFO`` of one node (``{"cluster_state": "ok", ...}``), or None when it
        does not answer."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=1.0)
        try:
            return cast("dict[str, Any]", client.execute_command("CLUSTER INFO"))
        except redis.RedisError:
            return None
        finally:
            client.close()

    def node_of(self, key: str) -> int:
        """The port of the node that serves ``key``: ``CLUSTER KEYSLOT``, then ``CLUSTER SLOTS``."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.ports[0], socket_timeout=5.0)
        try:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for first, last, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if first <= slot <= last:
                    return int(primary[1])
        finally:
            client.close()
        raise AssertionError(f"no node serves slot {slot} of {key!r}")

    def stop(self) -> None:
        """Kill every node (nothing is persisted) and wait for it to end."""
        procs, self.procs = self.procs, []
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def shared_cluster() -> RedisCluster:
    """One cluster for the whole test session (the contract suite), killed at exit.
    A cluster that cannot start fails (or skips) every test that needs it, at once."""
    started = _start_shared_cluster()
    if isinstance(started, BaseException):
        raise started
    return started


@functools.cache
def _start_shared_cluster() -> RedisCluster | BaseException:
    directory = Path(tempfile.mkdtemp(prefix="hurtle-cluster-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    try:
        cluster = RedisCluster(directory)
        cluster.start()
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:  # skipped, or failed
        return exc
    atexit.register(cluster.stop)  # runs before the rmtree registered first
    return cluster


def redis_cluster_url(tmp_path: Path, unique: str) -> str:
    """A contract-suite URL factory: the session's Redis Cluster, a key prefix of the test's own."""
    return f"{shared_cluster().url}?prefix=hurtle-test-{unique}"
