"""A result store that goes down under a running worker: the worker stops fetching
at its bound, keeps its leases, and loses nothing; when the store is back, every
task finishes once and every result can be read.

The broker is SQLite, Redis or RabbitMQ; results are kept in a ``redis-server`` of
the test's own, which the test stops and starts. A last test has one Redis be
both broker and result store, and takes it away: the worker's outage policy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hurtle.worker.settle_buffer import held_limit
from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import Workers, lines, run_counts, stats, wait_until
from tests.redis_server import RedisServer, unique_redis_url

pytestmark = pytest.mark.slow

STOPPED = "results cannot be written: stopped fetching"
RESUMED = "results written again: fetching resumed"
LEASE = 2.0  # seconds: the app's visibility timeout, short so an unextended lease would expire
#: ``-c 4 -t 4``: eight slots, and by default 256 finished tasks at most waiting to be written.
BOUND = held_limit(4 + 4, None)


@pytest.fixture
def use_urls(worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point this process (the producer) and the workers started after at a broker
    and a result store."""

    def use(broker: str, results: str | None) -> None:
        for key, value in (("HURTLE_BROKER", broker), ("HURTLE_RESULTS", results)):
            if value is None:
                monkeypatch.delenv(key, raising=False)
                worker_env.pop(key, None)
            else:
                monkeypatch.setenv(key, value)
                worker_env[key] = value

    return use


@pytest.fixture
def result_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own for results (AOF, fsync always)."""
    server = RedisServer(tmp_path / "results")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def broker_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def broker_url(name: str, tmp_path: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{tmp_path}/broker.db"
    if name == "redis":
        return unique_redis_url()
    return unique_amqp_url()


def test_a_worker_whose_result_store_is_down_stops_fetching_at_its_bound_and_loses_nothing(
    broker_name: str, tmp_path: Path, result_redis: RedisServer, use_urls: Callable[..., None],
    load_workerapp: Callable[..., Any], workers: Workers, marks: Path,
) -> None:
    # Given a worker on a healthy broker, its results in a Redis of their own
    # (a lost connection to it is given up after 1 s, not the default 30)
    url = broker_url(broker_name, tmp_path)
    use_urls(url, f"{result_redis.url}?reconnect_timeout=1")
    workerapp = load_workerapp(visibility=LEASE)
    worker = workers.start("-p", "1", "-c", "4", "-t", "4")
    wait_until(lambda: "hurtle.worker: worker" in workers.log(), "the worker process to start")
    # When the result store goes down and 400 tasks are sent
    result_redis.stop(kill=True)
    keys = [f"k{i}" for i in range(400)]
    handles = workerapp.record.send_many([(k,) for k in keys])
    # Then the worker runs its bound of them, says once that it stopped fetching, and waits
    wait_until(lambda: "writing acks and results failed" in workers.log(), "a write to fail")
    wait_until(lambda: len(lines(marks / "runs")) == BOUND, f"{BOUND} tasks to run")
    wait_until(lambda: STOPPED in workers.log(), "the worker to stop fetching")
    time.sleep(3 * LEASE)  # a window in which nothing more may run, and unextended leases expire
    assert len(lines(marks / "runs")) == BOUND
    assert workers.log().count(STOPPED) == 1
    # And it kept every lease: nothing it holds went back to the queue (RabbitMQ has no
    # lease to expire; what its consumer buffered it gave back once it stopped fetching)
    assert stats(url).ready == 400 - BOUND
    # When the store comes back
    result_redis.start()
    # Then every task finishes, once, and every result can be read
    assert all(isinstance(h.result(timeout=60), int) for h in handles)
    assert run_counts(marks) == Counter(keys)
    wait_until(lambda: RESUMED in workers.log(), "the worker to say it fetches again")
    assert worker.poll() is None, workers.log()
    assert workers.log().count("writing acks and results failed") == 1, "one warning, not one per try"


def test_a_redis_that_is_broker_and_result_store_going_down_and_back_loses_nothing(
    tmp_path: Path, use_urls: Callable[..., None], load_workerapp: Callable[..., Any],
    workers: Workers, marks: Path,
) -> None:
    # Given a worker busy with 2,000 tasks on one Redis, broker and result store both
    # (a lost connection is given up after 1 s, not the default 30)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        use_urls(f"{server.url}?reconnect_timeout=1", None)
        workerapp = load_workerapp(visibility=LEASE)
        keys = [f"k{i}" for i in range(2000)]
        handles = workerapp.record.send_many([(k,) for k in keys])
        worker = workers.start("-p", "1", "-c", "4", "-t", "4", "--max-disconnect", "60")
        wait_until(lambda: len(lines(marks / "runs")) >= 200, "some tasks to run")
        # When Redis goes away for longer than the leases, and comes back
        server.stop(kill=True)
        wait_until(lambda: "writing acks and results failed" in workers.log(), "a write to fail")
        time.sleep(2 * LEASE)  # the outage: long enough for unextended leases to expire
        server.start()
        # Then every task ran at least once, every result can be read, and the worker lives
        assert all(isinstance(h.result(timeout=60), int) for h in handles)
        assert set(run_counts(marks)) == set(keys)
        assert worker.poll() is None, workers.log()
    finally:
        server.stop(kill=True)
