"""`hurtle worker` on Redis as a user runs it: real processes, and faults.

Tests that only need a Redis use the shared server with a key prefix of their
own; fault tests start a private ``redis-server`` on a free port (AOF, fsync
always, in ``tmp_path``) which they kill or restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import (
    Workers,
    dead_letters,
    hurtle_cli,
    lines,
    run_counts,
    stats,
    wait_until,
)
from tests.integration.scenarios import (
    DUPLICATES_MAX,
    a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone,
    a_killed_process_is_replaced_and_loses_nothing,
    a_task_that_kills_its_process_is_dead_lettered,
    every_task_ran,
    kill_mid_run,
    send_keyed,
)
from tests.redis_server import RedisServer, unique_redis_url

pytestmark = pytest.mark.slow


@pytest.fixture
def use_broker(worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Point this process (the producer) and the workers started after at ``url``."""

    def use(url: str) -> str:
        monkeypatch.setenv("HURTLE_BROKER", url)
        worker_env["HURTLE_BROKER"] = url
        return url

    return use


@pytest.fixture
def redis_url(use_broker: Callable[[str], str]) -> str:
    """The shared Redis, with a key prefix of this test's own."""
    return use_broker(unique_redis_url())


@pytest.fixture
def private_redis(tmp_path: Path, use_broker: Callable[[str], str]) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    use_broker(server.url)
    yield server
    server.stop(kill=True)





# -- on the shared server ---------------------------------------------------------


def test_a_burst_worker_on_redis_runs_every_task_stores_results_and_exits_zero(
    redis_url: str, workerapp: Any, workers: Workers
) -> None:
    handles = workerapp.add.send_many([(i, i) for i in range(300)])
    worker = workers.start("-p", "2", "--burst")
    assert worker.wait(60) == 0, workers.log()
    assert [h.result(timeout=5) for h in handles] == [2 * i for i in range(300)]
    assert stats(redis_url).pending == 0


def test_a_delayed_task_on_redis_does_not_start_before_its_delay(
    redis_url: str, workerapp: Any, workers: Workers
) -> None:
    sent_at = time.time()
    handle = workerapp.pid.options(delay=1.0).send()
    workers.start("-p", "1")
    assert handle.result(timeout=30) > 0
    assert time.time() >= sent_at + 1.0


def test_a_task_longer_than_the_visibility_timeout_runs_once(
    redis_url: str, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # Given two worker processes whose leases last 1 s without a heartbeat
    workerapp = load_workerapp(visibility=1.0)
    handle = workerapp.wait_for_go.send("long")
    workers.start("-p", "2")
    wait_until(lambda: lines(marks / "started"), "the task to start")
    # When the task runs for 3 leases (the heartbeat keeps its lease)
    until = time.monotonic() + 3.0
    while time.monotonic() < until:  # watching for a second start, not waiting for one
        assert lines(marks / "started") == ["long"], "the task was handed to a second worker"
        time.sleep(0.05)
    (marks / "go").touch()
    # Then it finished once, and no other worker ever started it
    assert handle.result(timeout=10) == "long"
    assert lines(marks / "started") == ["long"]


def test_a_failing_task_is_dead_lettered_and_the_dlq_commands_work_on_redis(
    redis_url: str, workerapp: Any, workers: Workers
) -> None:
    handle = workerapp.always_fails.send("disk on fire")
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    with pytest.raises(hurtle.TaskFailed):
        handle.result(timeout=5)
    assert "retry 2/2" in workers.log()

    listing = hurtle_cli("dlq", "list", "--broker", redis_url)
    assert listing.returncode == 0, listing.stderr
    assert "always_fails" in listing.stdout and "ValueError: disk on fire" in listing.stdout

    (letter,) = dead_letters(redis_url)
    requeued = hurtle_cli("dlq", "requeue", letter.id, "--broker", redis_url)
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued.stderr
    assert (stats(redis_url).ready, stats(redis_url).dead) == (1, 0)

    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log(1)
    purged = hurtle_cli("dlq", "purge", "--yes", "--broker", redis_url)
    assert purged.returncode == 0 and "deleted 1" in purged.stdout, purged.stderr
    assert "no dead letters" in hurtle_cli("dlq", "list", "--broker", redis_url).stdout


def test_a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone_on_redis(
    redis_url: str, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone(load_workerapp, workers, marks, redis_url)


def test_a_task_that_kills_its_process_is_dead_lettered_after_max_deliveries_on_redis(
    redis_url: str, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # The delivery count lives in the stream's pending list: it survives each crash.
    a_task_that_kills_its_process_is_dead_lettered(load_workerapp, workers, marks, redis_url, visibility=0.5)


# -- faults, each on a private redis-server ------------------------------------------


def test_a_worker_process_killed_mid_run_is_replaced_and_its_tasks_run_again(
    private_redis: RedisServer, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # Given leases of 2 s: the replacement takes over the dead process's entries once they expire
    workerapp = load_workerapp(visibility=2.0)
    a_killed_process_is_replaced_and_loses_nothing(workerapp, workers, marks, private_redis.url)


def test_a_whole_worker_killed_mid_run_loses_nothing_and_a_new_worker_runs_its_tasks(
    private_redis: RedisServer, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # Given 5,000 tasks and a worker of two processes holding 2 s leases
    workerapp = load_workerapp(visibility=2.0)
    keys = send_keyed(workerapp, 5000)
    node = workers.start("-p", "2", "-t", "8")

    def both_processes() -> list[int] | None:
        pids = workers.children(node)
        return pids if len(pids) == 2 else None

    children = wait_until(both_processes, "two worker processes")
    # When the whole worker is SIGKILLed mid-run (supervisor first: nothing is replaced)
    killed_at = kill_mid_run(marks, node.pid, *children)
    node.wait(10)
    # Then a new worker takes over the dead one's leases as they expire: every task runs
    workers.start("-p", "2", "-t", "8")
    assert every_task_ran(marks, private_redis.url, keys, killed_at) < DUPLICATES_MAX


def test_a_redis_restart_mid_run_loses_nothing_acknowledged(
    private_redis: RedisServer, load_workerapp: Callable[..., Any], workers: Workers, marks: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="hurtle.redis")
    # Given workers busy with a stream of tasks
    workerapp = load_workerapp(visibility=5.0)
    supervisor = workers.start("-p", "2", "-t", "8", "--max-disconnect", "60")
    sent: list[str] = []
    errors: list[BaseException] = []

    def send(count: int) -> None:
        batch = [f"k{len(sent) + i}" for i in range(count)]
        try:
            workerapp.record.send_many([(k,) for k in batch])  # returns once Redis has them
        except BaseException as exc:
            errors.append(exc)
            raise
        sent.extend(batch)

    for _ in range(5):
        send(200)
    wait_until(lambda: len(lines(marks / "runs")) >= 200, "some tasks to run")
    # When Redis is killed, a send is made while it is down, and Redis comes back
    private_redis.stop(kill=True)
    sender = threading.Thread(target=send, args=(200,))
    sender.start()
    wait_until(lambda: "lost the connection to Redis" in caplog.text, "the producer to notice")
    wait_until(lambda: "lost the connection to Redis" in workers.log(), "the workers to notice")
    private_redis.start()
    sender.join(60)
    assert not sender.is_alive() and not errors, errors
    for _ in range(4):
        send(200)
    # Then every acknowledged send runs; producer and workers reconnected, none crashed
    wait_until(lambda: set(run_counts(marks)) >= set(sent), "every sent task to run", limit=60)
    wait_until(lambda: stats(private_redis.url).pending == 0, "nothing left pending")
    assert "reconnected to Redis" in caplog.text
    assert "reconnected to Redis" in workers.log()
    assert "replacing it" not in workers.log() and supervisor.poll() is None
    runs = run_counts(marks)
    print(f"\nRedis restart: {len(sent)} tasks, {sum(runs.values())} runs,"
          f" {sum(n - 1 for n in runs.values())} duplicates")


def test_a_worker_that_cannot_reach_redis_past_max_disconnect_exits_non_zero(
    private_redis: RedisServer, workerapp: Any, workers: Workers
) -> None:
    # Given a worker running on a Redis that then goes away for good
    supervisor = workers.start("-p", "2", "--max-disconnect", "1")
    assert workerapp.add.send(1, 2).result(timeout=30) == 3
    private_redis.stop(kill=True)
    # Then it says so, retries with backoff, and past the limit exits 69 (EX_UNAVAILABLE)
    assert supervisor.wait(60) == 69, workers.log()
    log = workers.log()
    assert "lost the connection to Redis" in log and "the broker is unreachable" in log


def test_garbage_written_into_the_stream_is_dead_lettered_while_valid_tasks_run(
    private_redis: RedisServer, workerapp: Any, workers: Workers
) -> None:
    import redis

    # Given valid tasks around entries a foreign producer wrote by hand
    before = workerapp.add.send_many([(i, 1) for i in range(50)])
    stream = "hurtle:{default}:stream"
    client = redis.Redis.from_url(private_redis.url)
    client.xadd(stream, {"body": b"not json at all \xff"})
    client.xadd(stream, {"body": b'{"id": "u1", "task": "workerapp.no_such_task"}'})
    client.xadd(stream, {"body": b'{"id": "w1", "task": "workerapp.add", "args": [1, 2, 3]}'})
    client.xadd(stream, {"colour": b"blue"})  # no body at all
    client.close()
    after = workerapp.add.send_many([(i, 2) for i in range(50)])
    # When a worker runs until the queue is empty
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    # Then the valid tasks ran and each garbage entry is a dead letter saying why
    assert [h.result(timeout=5) for h in before + after] == [i + 1 for i in range(50)] + [
        i + 2 for i in range(50)
    ]
    reasons = sorted(letter.reason for letter in dead_letters(private_redis.url))
    assert len(reasons) == 4, reasons
    assert sum("undecodable" in r for r in reasons) == 2
    assert any("unknown task 'workerapp.no_such_task'" in r for r in reasons)
    assert any("arguments do not bind to workerapp.add" in r for r in reasons)
    assert stats(private_redis.url).pending == 0
