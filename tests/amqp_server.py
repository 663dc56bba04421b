"""RabbitMQ for tests: the shared server (``HURTLE_TEST_AMQP_URL``), each test under a
queue-name prefix of its own, deleted at exit.

``shared_amqp_url()`` is the one reachability check: with ``CI=true`` a RabbitMQ
that cannot be reached fails the test (CI must never go green by skipping);
elsewhere the test is skipped with the reason. ``private_vhost()`` makes a
virtual host of the test's own with ``rabbitmqctl`` (``HURTLE_TEST_RABBITMQCTL``,
e.g. ``docker exec rabbit rabbitmqctl``), for fault tests that close every
connection of it and so disturb no one else on the server.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

T = TypeVar("T")

ENV_URL = "HURTLE_TEST_AMQP_URL"
ENV_CTL = "HURTLE_TEST_RABBITMQCTL"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
CTL_LIMIT = 60.0  # seconds: a bound on one rabbitmqctl call, never a sleep

_prefixes: list[tuple[str, str]] = []  # (server URL, prefix) whose queues are deleted at exit


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: RabbitMQ is required, not skipped)")
    pytest.skip(reason)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, on a thread (the caller may be inside a loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@functools.cache
def _ping(url: str) -> str | None:
    """None when RabbitMQ answers at ``url``, else why not."""
    try:
        import aiormq
    except ImportError:
        return "aiormq is not installed (pip install 'hurtle[amqp]')"

    async def ping() -> None:
        connection = await asyncio.wait_for(aiormq.connect(url), 5.0)
        await connection.close()

    try:
        _run(ping())
    except Exception as exc:
        return f"no RabbitMQ at {url} ({exc!r}); set {ENV_URL}"
    return None


def shared_amqp_url() -> str:
    """The shared RabbitMQ's URL; skips (or fails under CI) when unreachable."""
    url = os.environ.get(ENV_URL, DEFAULT_URL)
    problem = _ping(url)
    if problem is not None:
        _unavailable(problem)
    return url


def with_params(url: str, **params: str) -> str:
    """``url`` with hurtle's query parameters set; a ``prefix``'s queues are deleted at exit."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    if "prefix" in params:
        _prefixes.append((urlunsplit(parts._replace(query="")), params["prefix"]))
    return urlunsplit(parts._replace(query=urlencode(query)))


def amqp_url(tmp_path: Path, unique: str) -> str:
    """A contract-suite URL factory: the shared server, a queue prefix of the test's own."""
    return with_params(shared_amqp_url(), prefix=f"hurtle-test-{unique}")


def unique_amqp_url(**params: str) -> str:
    return with_params(shared_amqp_url(), prefix=f"hurtle-test-{uuid.uuid4().hex}", **params)


# -- cleaning up ---------------------------------------------------------------------


async def _delete(connection: Any, prefix: str) -> None:
    """Delete what a broker with ``prefix`` may have made (what a bench run's namespace does)."""
    from hurtle.bench.namespace import delete_amqp_names
    from hurtle.brokers.amqp.link import Names

    channel = await connection.channel()
    try:
        await delete_amqp_names(channel, Names(prefix))
    finally:
        if not channel.is_closed:
            await channel.close()


_CLEANERS = 16  # prefixes deleted at once, each on a channel of its own


def delete_test_queues() -> None:
    """Delete the queues of every prefix this process made; called when its test
    session finishes (a process that ends first, at exit). One connection per server
    and 16 channels at a time: one prefix after another, a worker that made a few
    hundred was stopped before it was done, and their queues stayed on the server."""
    prefixes, _prefixes[:] = list(_prefixes), []
    if not prefixes:
        return
    import aiormq

    async def delete_one(connection: Any, room: asyncio.Semaphore, prefix: str) -> None:
        async with room:
            with contextlib.suppress(Exception):
                await _delete(connection, prefix)

    async def delete_all() -> None:
        for url in dict.fromkeys(url for url, _ in prefixes):
            try:
                connection = await asyncio.wait_for(aiormq.connect(url), 5.0)
            except Exception:
                continue
            try:
                room = asyncio.Semaphore(_CLEANERS)
                await asyncio.gather(*(
                    delete_one(connection, room, prefix) for server, prefix in prefixes if server == url
                ))
            finally:
                await connection.close()

    asyncio.run(delete_all())


atexit.register(delete_test_queues)


# -- rabbitmqctl ---------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    command = shlex.split(os.environ.get(ENV_CTL, "rabbitmqctl"))
    if shutil.which(command[0]) is None:
        _unavailable(f"{command[0]} is not installed; set {ENV_CTL}")
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=CTL_LIMIT, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A virtual host of this test's own, on the shared server: yields its base URL."""
    base = shared_amqp_url()
    parts = urlsplit(base)
    vhost = f"hurtle-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe=""), query=""))
    finally:
        rabbitmqctl("delete_vhost", vhost)


def close_connections(vhost_url: str, why: str = "hurtle fault test") -> None:
    """Have the server close every connection of the test's virtual host."""
    vhost = urlsplit(vhost_url).path.lstrip("/")
    rabbitmqctl("close_all_connections", "--vhost", vhost, why)
