"""`hurtle worker` on RabbitMQ as a user runs it: real processes, results in SQLite, and faults.

Each test has a queue-name prefix of its own on the shared server; the test that
has the server close connections does it in a virtual host of its own, so it
disturbs no one else's connections.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest

import hurtle
from hurtle.envelope import Result, decode_result
from tests.amqp_server import close_connections, private_vhost, unique_amqp_url
from tests.integration.conftest import (
    Workers,
    dead_letters,
    hurtle_cli,
    lines,
    queue_table,
    run_counts,
    stats,
    wait_until,
)
from tests.integration.scenarios import (
    a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone,
    a_killed_process_is_replaced_and_loses_nothing,
    a_task_that_kills_its_process_is_dead_lettered,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def use_amqp(
    worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[str], str]:
    """Point this process (the producer) and the workers started after at RabbitMQ
    ``url``, with results in a SQLite store (AMQP keeps none)."""

    def use(url: str) -> str:
        for key, value in (("HURTLE_BROKER", url), ("HURTLE_RESULTS", f"sqlite:///{tmp_path}/results.db")):
            monkeypatch.setenv(key, value)
            worker_env[key] = value
        return url

    return use


@pytest.fixture
def amqp_url(use_amqp: Callable[[str], str]) -> str:
    return use_amqp(unique_amqp_url())




def result_record(app: hurtle.App, task_id: str) -> Result:
    async def get() -> bytes | None:
        store = app.client.connection().results
        assert store is not None
        return await store.get(task_id)

    record = app.client.run_sync(get())
    assert record is not None
    return decode_result(record)



# -- on the shared server ---------------------------------------------------------------


def test_a_burst_worker_on_rabbitmq_runs_every_task_and_stores_results_in_sqlite(
    amqp_url: str, workerapp: Any, workers: Workers
) -> None:
    handles = workerapp.add.send_many([(i, i) for i in range(300)])
    worker = workers.start("-p", "2", "--burst")
    assert worker.wait(60) == 0, workers.log()
    assert [h.result(timeout=5) for h in handles] == [2 * i for i in range(300)]
    assert stats(amqp_url).pending == 0


def test_delays_retries_dead_letters_and_the_dlq_commands_on_rabbitmq(
    amqp_url: str, workerapp: Any, workers: Workers
) -> None:
    # Given a delayed task and a task that fails every time (2 retries, 0.05 s apart)
    sent_at = time.time()
    delayed = workerapp.pid.options(delay=1.0).send()
    failing = workerapp.always_fails.send("disk on fire")
    # When a burst worker runs until nothing is left, delayed messages included
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    # Then the delayed task did not start before its delay, and the failing one was retried, then dead
    assert delayed.result(timeout=5) > 0
    assert result_record(workerapp.app, delayed.id).started_at >= sent_at + 1.0
    with pytest.raises(hurtle.TaskFailed, match="disk on fire"):
        failing.result(timeout=5)
    assert "retry 2/2" in workers.log()

    listing = hurtle_cli("dlq", "list", "--broker", amqp_url)
    assert listing.returncode == 0, listing.stderr
    assert "always_fails" in listing.stdout and "ValueError: disk on fire" in listing.stdout

    (letter,) = dead_letters(amqp_url)
    requeued = hurtle_cli("dlq", "requeue", letter.id, "--broker", amqp_url)
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued.stderr
    assert (stats(amqp_url).ready, stats(amqp_url).dead) == (1, 0)

    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log(1)
    purged = hurtle_cli("dlq", "purge", "--yes", "--broker", amqp_url)
    assert purged.returncode == 0 and "deleted 1" in purged.stdout, purged.stderr
    assert "no dead letters" in hurtle_cli("dlq", "list", "--broker", amqp_url).stdout


def test_status_on_rabbitmq_shows_the_count_it_cannot_know_as_a_question_mark(
    amqp_url: str, workerapp: Any
) -> None:
    # RabbitMQ tells a client only of its own unacked messages: a 0 in flight would be a guess.
    # RabbitMQ shows no message before it is consumed: an age of 0s would be a guess too.
    # Nor what a queue ever took in: its rate in is unknown; its rate out comes from the
    # task history in the SQLite result store (nothing settled yet).
    workerapp.add.send(1, 2)
    out = hurtle_cli("status", "--broker", amqp_url)
    as_json = hurtle_cli("status", "--broker", amqp_url, "--json")
    assert out.returncode == 0 and as_json.returncode == 0, out.stderr + as_json.stderr
    assert queue_table(out.stdout)["default"] == {
        "queue": "default", "ready": "1", "oldest": "?", "delayed": "0", "in flight": "?", "dead": "0",
        "in/min": "?", "out/min": "0.0",
    }
    (queue,) = [q for q in json.loads(as_json.stdout)["queues"] if q["name"] == "default"]
    assert (queue["ready"], queue["oldest_ready_age"], queue["in_flight"]) == (1, None, None)
    assert (queue["in_per_minute"], queue["out_per_minute"]) == (None, 0.0)


def test_garbage_published_by_a_plain_amqp_client_is_dead_lettered_while_valid_tasks_run(
    amqp_url: str, workerapp: Any, workers: Workers
) -> None:
    import aio_pika

    # Given valid tasks around messages a foreign producer published straight to the queue
    before = workerapp.add.send_many([(i, 1) for i in range(50)])
    parts = urlsplit(amqp_url)
    work_queue = f"{dict(parse_qsl(parts.query))['prefix']}.q.default"

    async def publish_garbage() -> None:
        connection = await aio_pika.connect(urlunsplit(parts._replace(query="")))
        async with connection:
            channel = await connection.channel()
            for body in (
                b"not json at all \xff",
                b"",
                b'{"id": "u1", "task": "workerapp.no_such_task"}',
                b'{"id": "w1", "task": "workerapp.add", "args": [1, 2, 3]}',
            ):
                await channel.default_exchange.publish(aio_pika.Message(body), routing_key=work_queue)

    asyncio.run(publish_garbage())
    after = workerapp.add.send_many([(i, 2) for i in range(50)])
    # When a worker runs until the queue is empty
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    # Then the valid tasks ran and each foreign message is a dead letter saying why
    assert [h.result(timeout=5) for h in before + after] == [i + 1 for i in range(50)] + [
        i + 2 for i in range(50)
    ]
    reasons = sorted(letter.reason for letter in dead_letters(amqp_url))
    assert len(reasons) == 4, reasons
    assert sum("undecodable" in r for r in reasons) == 2
    assert any("unknown task 'workerapp.no_such_task'" in r for r in reasons)
    assert any("arguments do not bind to workerapp.add" in r for r in reasons)
    assert stats(amqp_url).pending == 0


def test_a_busy_worker_holds_back_nothing_so_a_second_worker_starts_the_next_task(
    amqp_url: str, workerapp: Any, workers: Workers, marks: Path
) -> None:
    # Given a worker process that runs one sync task at a time, busy with a long task
    workers.start("-p", "1", "-t", "1")
    first = workerapp.wait_for_go.send("a")
    wait_until(lambda: lines(marks / "started") == ["a"], "the first task to start")
    second = workerapp.wait_for_go.send("b")
    # Then the next task stays on the server, ready for anyone (Celery's prefetch would hold it)
    wait_until(lambda: stats(amqp_url).ready == 1, "the second task to wait on the server")
    assert lines(marks / "started") == ["a"]
    # When a second worker starts, it starts that task while the first worker is still busy
    workers.start("-p", "1", "-t", "1")
    wait_until(lambda: sorted(lines(marks / "started")) == ["a", "b"], "the second worker to start b")
    (marks / "go").touch()
    assert (first.result(timeout=10), second.result(timeout=10)) == ("a", "b")


def test_a_task_that_kills_its_process_is_dead_lettered_after_max_deliveries_on_rabbitmq(
    amqp_url: str, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # A classic queue only flags a redelivery; the count survives each crash in a header.
    a_task_that_kills_its_process_is_dead_lettered(load_workerapp, workers, marks, amqp_url)


def test_a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone_on_rabbitmq(
    amqp_url: str, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone(load_workerapp, workers, marks, amqp_url)


# -- faults ----------------------------------------------------------------------------


def test_a_worker_killed_mid_run_loses_nothing_on_a_quorum_queue(
    use_amqp: Callable[[str], str], load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # Given a quorum queue: RabbitMQ puts back what a dead connection held
    url = use_amqp(unique_amqp_url(queue_type="quorum"))
    a_killed_process_is_replaced_and_loses_nothing(load_workerapp(), workers, marks, url)


def test_connections_closed_by_the_server_are_reopened_and_nothing_is_lost(
    use_amqp: Callable[[str], str], load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    with private_vhost() as vhost_url:
        # Given workers busy with a stream of tasks in a virtual host of this test's own
        url = use_amqp(vhost_url)
        workerapp = load_workerapp()
        supervisor = workers.start("-p", "2", "-t", "8", "--max-disconnect", "60")
        sent: list[str] = []

        def send(count: int) -> None:
            batch = [f"k{len(sent) + i}" for i in range(count)]
            workerapp.record.send_many([(k,) for k in batch])  # returns once RabbitMQ confirmed them
            sent.extend(batch)

        for _ in range(5):
            send(200)
        wait_until(lambda: len(lines(marks / "runs")) >= 200, "some tasks to run")
        # When the server closes every connection, the workers' and this producer's,
        # while tasks are sent, run and acknowledged
        closer = threading.Thread(target=close_connections, args=(vhost_url,))
        closer.start()
        while closer.is_alive():
            send(200)
        closer.join()
        wait_until(lambda: "lost the connection to RabbitMQ" in workers.log(), "the workers to notice")
        send(200)
        # Then producer and workers reconnect, none crashed, and every confirmed send runs
        wait_until(lambda: set(run_counts(marks)) >= set(sent), "every sent task to run", limit=60)
        wait_until(lambda: stats(url).pending == 0, "nothing left on the server")
        assert "reconnected to RabbitMQ" in workers.log()
        assert "replacing it" not in workers.log() and supervisor.poll() is None
        runs = run_counts(marks)
        print(f"\nconnections closed: {len(sent)} tasks, {sum(runs.values())} runs,"
              f" {sum(n - 1 for n in runs.values())} duplicates")
        workers.stop_all()
