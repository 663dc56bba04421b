"""Where the scheduler runs, and what a worker says and opens for periodic tasks."""

from __future__ import annotations

import hurtle
from hurtle.schedule.ticks import TICK_HEADER, tick_envelope
from hurtle.schedule.worker import runs_scheduler
from hurtle.testing import run_consumer
from hurtle.worker.consumer import WorkerConfig
from hurtle.worker.startup import start_block, start_warnings

from .support import MakeApp


def periodic_app(make_app: MakeApp) -> hurtle.App:
    app = make_app()

    @app.periodic("*/5 * * * *", tz="Europe/Berlin", name="tasks.sweep")
    def sweep() -> None:
        pass

    return app


def test_an_app_without_schedules_runs_no_scheduler(app: hurtle.App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert not runs_scheduler(app, WorkerConfig())


def test_the_first_process_of_a_long_lived_worker_runs_the_scheduler(make_app: MakeApp) -> None:
    app = periodic_app(make_app)

    assert runs_scheduler(app, WorkerConfig(), slot=0)
    assert not runs_scheduler(app, WorkerConfig(), slot=1)  # one contender per worker is enough


def test_a_burst_worker_or_a_lease_of_zero_runs_no_scheduler(make_app: MakeApp) -> None:
    app = periodic_app(make_app)

    assert not runs_scheduler(app, WorkerConfig(burst=True))
    assert not runs_scheduler(app, WorkerConfig(schedule_lease=0))


def test_the_start_block_lists_the_schedules_and_whether_this_worker_sends_them(make_app: MakeApp) -> None:
    app = periodic_app(make_app)

    block = start_block(app, WorkerConfig(schedule_lease=15.0), 2)
    burst = start_block(app, WorkerConfig(burst=True), 2)

    assert "schedules: this worker runs them while it holds the lease (15s)" in block
    assert "tasks.sweep  cron */5 * * * * (Europe/Berlin)  catch_up skip" in block
    assert "schedules: not run by this worker (--burst)" in burst


def test_an_app_without_schedules_has_no_schedule_lines(app: hurtle.App) -> None:
    assert "schedule" not in start_block(app, WorkerConfig(), 1)


def test_a_worker_warns_when_no_store_can_elect_the_leader(make_app: MakeApp) -> None:
    app = hurtle.App("amqp://guest:guest@127.0.0.1:5672/")

    @app.periodic(every=60.0)
    def sweep() -> None:
        pass

    assert any("periodic tasks will not run" in warning for warning in start_warnings(app, ["default"]))


async def test_a_consumer_on_a_broker_that_keeps_records_opens_no_store_of_its_own(app: hurtle.App) -> None:
    # The record store serves ticks, cancel marks, unique keys and progress; the
    # broker lends its own, so the worker makes no connection more for it.
    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    await add.send_async(1, 2)
    consumer = await run_consumer(app, WorkerConfig(burst=True, fetch_timeout=0.05))

    assert consumer.counters.succeeded == 1
    assert consumer.tick_claims.opened and consumer.tick_claims.borrowed


async def test_an_async_tick_sent_twice_runs_once(app: hurtle.App) -> None:
    runs: list[str] = []

    @app.periodic(every=1.0)
    async def beat() -> None:
        runs.append(hurtle.current_task().headers[TICK_HEADER])

    schedule = app.schedules[beat.name]
    copies = [tick_envelope(app, schedule, 5000, 5.0) for _ in range(2)]
    await app.client.send_async(copies)
    consumer = await run_consumer(app, WorkerConfig(burst=True, fetch_timeout=0.05))

    assert runs == ["5000"]
    assert consumer.counters.succeeded == 1
    assert consumer.tick_claims.opened
