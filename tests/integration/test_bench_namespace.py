"""A bench run on a shared Redis or RabbitMQ leaves nothing behind, and touches nothing else.

Each run's URL gets a prefix of its own (``hurtle.bench.namespace``); whatever the
run made under it (queues, delayed and dead messages, tallies) is deleted when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis

from hurtle.bench.namespace import run_namespace
from hurtle.brokers import from_url
from tests.amqp_server import unique_amqp_url
from tests.contract.support import counts, fetch_one, messages
from tests.redis_server import unique_redis_url


def prefix(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["prefix"]


async def make_a_bit_of_everything(url: str) -> None:
    """What a run leaves: a queue with a waiting message, a delayed one, a dead letter."""
    broker = from_url(url)
    await broker.connect()
    try:
        await broker.enqueue(messages("q", b"waiting", b"to-fail"))
        await broker.enqueue(messages("q", b"later", eta=time.time() + 3600))
        await broker.dead_letter(await fetch_one(broker, "q"), "failed in a bench run")
    finally:
        await broker.close()


async def leave_a_neighbour(url: str) -> None:
    """A message of the user's own, waiting in their namespace: it must stay."""
    broker = from_url(url)
    await broker.connect()
    try:
        await broker.enqueue(messages("keep", b"mine"))
    finally:
        await broker.close()


async def ready(url: str, queue: str) -> int:
    broker = from_url(url)
    await broker.connect()
    try:
        return (await counts(broker, queue)).ready
    finally:
        await broker.close()


def redis_keys(url: str, pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(url.split("?")[0])
    try:
        return list(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def test_a_run_on_redis_deletes_every_key_under_its_prefix_and_no_other() -> None:
    # (Sync, as the bench is: the namespace is deleted on a loop of its own.)
    # Given a user's namespace with a queue of its own
    users = unique_redis_url()
    asyncio.run(leave_a_neighbour(users))
    # When a run makes queues, delayed messages and dead letters in its namespace
    with run_namespace(users) as url:
        own = prefix(url)
        assert own.startswith(prefix(users) + "-bench-")
        asyncio.run(make_a_bit_of_everything(url))
        assert redis_keys(url, f"{own}:*"), "the run made keys"
    # Then nothing is left under its prefix, and the user's message is still there
    assert redis_keys(url, f"{own}:*") == []
    assert asyncio.run(ready(users, "keep")) == 1


def test_a_run_on_rabbitmq_deletes_its_queues_and_exchanges_and_no_other() -> None:
    users = unique_amqp_url()
    asyncio.run(leave_a_neighbour(users))
    with run_namespace(users) as url:
        asyncio.run(make_a_bit_of_everything(url))
    assert asyncio.run(amqp_names_left(url)) == []
    assert asyncio.run(ready(users, "keep")) == 1


async def amqp_names_left(url: str) -> list[str]:
    """Which of the queues and exchanges a run made still exist."""
    import aiormq

    from hurtle.brokers.amqp.link import AMQPURL
    from hurtle.brokers.amqp.topology import LEVELS

    names = AMQPURL.parse(url).names
    queues = [names.work("q"), names.dead("q"), names.catalogue, names.delay(0, "q")]
    exchanges = [names.dead_exchange, *(names.delay_exchange(level) for level in range(LEVELS))]
    left = []
    connection = await aiormq.connect(AMQPURL.parse(url).client_url.reveal())
    try:
        for name in queues + exchanges:
            channel = await connection.channel()  # a passive declare of nothing closes it
            try:
                if name in queues:
                    await channel.queue_declare(name, passive=True)
                else:
                    await channel.exchange_declare(name, passive=True)
                left.append(name)
            except aiormq.exceptions.ChannelNotFoundEntity:
                pass
    finally:
        await connection.close()
    return left


@pytest.mark.slow
@pytest.mark.xdist_group("bench")
def test_hurtle_bench_on_redis_leaves_no_key_and_reports_the_url_it_was_given() -> None:
    users = unique_redis_url()
    done = subprocess.run(
        [sys.executable, "-m", "hurtle", "bench", "noop", "-n", "200", "-p", "1", "--broker", users,
         "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout.splitlines()[0])
    assert run["verified"] is True and run["broker"] == users
    assert redis_keys(users, f"{prefix(users)}*") == []


@pytest.mark.slow
@pytest.mark.xdist_group("bench")
@pytest.mark.parametrize("phase", ["sending", "running"])
def test_a_bench_stopped_by_sigterm_stops_its_worker_and_leaves_no_key(phase: str) -> None:
    users = unique_redis_url()
    bench = subprocess.Popen(
        [sys.executable, "-m", "hurtle", "bench", "noop", "-n", "400000", "-p", "1", "--broker", users],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        # Once the run sends its tasks (or its worker takes them), in its own namespace
        reached = run_is_sending if phase == "sending" else worker_is_running
        deadline = time.monotonic() + 60
        while not reached(users):
            assert bench.poll() is None, bench.communicate()[1]
            assert time.monotonic() < deadline, f"the run never got to {phase}"
            time.sleep(0.02)  # the polling interval, not a wait for the run
        # When it is told to stop as a service manager would
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    # Then its worker stopped before the namespace was deleted: nothing is left in it
    left = redis_keys(users, f"{prefix(users)}*")
    _delete(users, left)  # (a failed run's keys are not under the prefix the suite cleans)
    assert left == []


def run_is_sending(users: str) -> bool:
    return bool(redis_keys(users, f"{prefix(users)}-bench-*:{{bench-noop}}:stream"))


def worker_is_running(users: str) -> bool:
    """A consumer of the run's stream has taken messages (the worker fetches)."""
    client = redis.Redis.from_url(users.split("?")[0])
    try:
        for stream in client.scan_iter(match=f"{prefix(users)}-bench-*:{{bench-noop}}:stream"):
            groups = client.xinfo_groups(stream)
            if any(group.get("pending") or group.get("entries-read") for group in groups):
                return True
        return False
    finally:
        client.close()


def _delete(users: str, keys: list[bytes]) -> None:
    if keys:
        client = redis.Redis.from_url(users.split("?")[0])
        try:
            client.delete(*keys)
        finally:
            client.close()
