"""Declaring periodic tasks: ``@app.periodic`` and ``app.schedule``."""

from __future__ import annotations

import pytest

import hurtle
from hurtle.errors import ConfigurationError

from .support import MakeApp


def test_periodic_registers_a_task_with_its_options_and_schedules_it(app: hurtle.App) -> None:
    @app.periodic("*/5 * * * *", tz="Europe/Berlin", queue="cron", retries=1)
    def sweep() -> None:
        pass

    schedule = app.schedules[sweep.name]

    assert app.tasks[sweep.name] is sweep
    assert (sweep.opts.queue, sweep.opts.retries) == ("cron", 1)
    assert (schedule.task, schedule.cron, schedule.tz, schedule.catch_up) == (
        sweep.name, "*/5 * * * *", "Europe/Berlin", "skip",
    )


def test_periodic_above_a_task_schedules_that_task_as_it_is(app: hurtle.App) -> None:
    @app.periodic(every=30.0, catch_up="all")
    @app.task(queue="io")
    async def ping() -> int:
        return 1

    assert ping.opts.queue == "io"
    assert app.schedules[ping.name].every == 30.0
    assert app.schedules[ping.name].catch_up == "all"


def test_periodic_above_a_task_refuses_task_options(app: hurtle.App) -> None:
    with pytest.raises(ConfigurationError, match=r"give the task's options .*queue.* to @app.task"):

        @app.periodic(every=30.0, queue="io")
        @app.task
        def ping() -> None:
            pass


def test_a_periodic_function_that_needs_arguments_is_refused(app: hurtle.App) -> None:
    with pytest.raises(ConfigurationError, match=r"with no arguments.*app.schedule"):

        @app.periodic(every=30.0)
        def needs(x: int) -> None:
            pass


def test_bad_timing_is_refused_before_the_function_is_registered(app: hurtle.App) -> None:
    with pytest.raises(ConfigurationError, match=r"@app\.periodic: 'every hour' is not a cron expression"):
        app.periodic("every hour")

    assert app.tasks == {} and app.schedules == {}


def test_schedule_sends_an_existing_task_with_its_arguments(app: hurtle.App) -> None:
    @app.task
    def report(kind: str, *, days: int = 1) -> None:
        pass

    daily = app.schedule(report, cron="0 6 * * *", args=("sales",), kwargs={"days": 1}, name="daily-sales")
    weekly = app.schedule(report, cron="0 6 * * 1", args=("sales",), kwargs={"days": 7}, name="weekly-sales")

    assert app.schedules == {"daily-sales": daily, "weekly-sales": weekly}
    assert (weekly.task, weekly.args, weekly.kwargs) == (report.name, ("sales",), {"days": 7})


def test_schedule_checks_the_arguments_against_the_task(app: hurtle.App) -> None:
    @app.task
    def report(kind: str, *, days: int = 1) -> None:
        pass

    with pytest.raises(ConfigurationError, match="days"):
        app.schedule(report, every=60.0, args=("sales",), kwargs={"days": "seven"})
    with pytest.raises(ConfigurationError, match="missing"):
        app.schedule(report, every=60.0)


def test_two_schedules_of_one_name_are_refused(app: hurtle.App) -> None:
    @app.task
    def report(kind: str) -> None:
        pass

    app.schedule(report, every=60.0, args=("a",))

    with pytest.raises(ConfigurationError, match="two schedules are named"):
        app.schedule(report, every=60.0, args=("b",))


def test_schedule_refuses_a_task_of_another_app(make_app: MakeApp) -> None:
    first, second = make_app(), make_app()

    @first.task
    def job() -> None:
        pass

    with pytest.raises(ConfigurationError, match="registered with this app"):
        second.schedule(job, every=1.0)
