"""Redis for tests: the shared server (``HURTLE_TEST_REDIS_URL``), or a private one.

``shared_redis_url()`` is the one reachability check: with ``CI=true`` a Redis
that cannot be reached fails the test (CI must never go green by skipping);
elsewhere the test is skipped with the reason. ``RedisServer`` starts a
``redis-server`` of the test's own on a free loopback port, for fault tests that
kill or restart it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, durable (AOF, fsync always) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed")
        self.binary = str(binary)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
        ]
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
