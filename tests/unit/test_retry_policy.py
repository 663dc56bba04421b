"""Which failures are retried (``retry_on``, ``no_retry_on``), and absolute times (``eta``)."""

from __future__ import annotations

import datetime
import time

import pytest

import hurtle
from hurtle import App, ConfigurationError, TaskFailed

from .support import RunWorker, broker_of, dead_letters, sent

NO_WAIT = hurtle.Constant(0.0)


async def test_a_bug_in_the_code_is_not_retried_by_default(app: App, worker: RunWorker) -> None:
    runs: list[int] = []

    @app.task(retries=3, backoff=NO_WAIT)
    def buggy() -> None:
        runs.append(1)
        None.upper()  # type: ignore[attr-defined]

    handle = buggy.send()
    consumer = await worker(app)

    assert runs == [1]
    assert consumer.counters.retried == 0
    with pytest.raises(TaskFailed, match="AttributeError"):
        handle.result(timeout=5.0)
    assert len(await dead_letters(app)) == 1


async def test_any_other_exception_is_retried_by_default(app: App, worker: RunWorker) -> None:
    runs: list[int] = []

    @app.task(retries=2, backoff=NO_WAIT)
    def flaky() -> None:
        runs.append(1)
        raise ConnectionError("partner down")

    flaky.send()
    await worker(app)

    assert runs == [1, 1, 1]


async def test_retry_on_retries_only_what_it_names(app: App, worker: RunWorker) -> None:
    runs: dict[str, int] = {"io": 0, "value": 0}

    @app.task(retries=2, backoff=NO_WAIT, retry_on=(OSError,))
    def fetch(kind: str) -> None:
        runs[kind] += 1
        raise (ConnectionResetError("reset") if kind == "io" else ValueError("bad"))

    fetch.send("io")
    fetch.send("value")
    await worker(app)

    assert runs == {"io": 3, "value": 1}


async def test_no_retry_on_names_what_is_never_retried_and_an_empty_one_retries_bugs(
    app: App, worker: RunWorker
) -> None:
    runs: dict[str, int] = {"key": 0, "type": 0}

    @app.task(retries=1, backoff=NO_WAIT, no_retry_on=(KeyError,))
    def lookup() -> None:
        runs["key"] += 1
        raise KeyError("missing")

    @app.task(retries=1, backoff=NO_WAIT, no_retry_on=())
    def typed() -> None:
        runs["type"] += 1
        raise TypeError("bug, but retried anyway")

    lookup.send()
    typed.send()
    await worker(app)

    assert runs == {"key": 1, "type": 2}


async def test_hurtle_retry_is_honoured_whatever_retry_on_says(app: App, worker: RunWorker) -> None:
    runs: list[int] = []

    @app.task(retries=1, retry_on=(OSError,))
    def again() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise hurtle.Retry(delay=0.0)

    again.send()
    await worker(app)

    assert runs == [1, 1]


def test_retry_on_must_be_a_tuple_of_exception_classes(app: App) -> None:
    with pytest.raises(ConfigurationError, match="retry_on"):
        app.task(retry_on=OSError)(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="no_retry_on"):
        app.task(no_retry_on=("KeyError",))(lambda: None)  # type: ignore[call-overload]


def add(x: int, y: int) -> int:
    return x + y


async def test_eta_sends_for_an_absolute_time(app: App) -> None:
    task = app.task(add)
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)

    task.options(eta=at).send(1, 2)
    task.options(eta=at.timestamp()).send(1, 2)
    local = datetime.datetime.now() + datetime.timedelta(hours=1)  # naive: local time
    task.options(eta=local).send(1, 2)

    assert await sent(app) == []  # not ready before its time

    (stats,) = await broker_of(app).stats(["default"])
    assert stats.delayed == 3


async def test_a_past_eta_runs_at_once(app: App, worker: RunWorker) -> None:
    task = app.task(add)

    handle = task.options(eta=time.time() - 60).send(1, 2)
    await worker(app)

    assert handle.result(timeout=5.0) == 3


def test_eta_and_delay_together_are_refused(app: App) -> None:
    task = app.task(add)

    with pytest.raises(ConfigurationError, match="not both"):
        task.options(eta=time.time(), delay=5.0)
    with pytest.raises(ConfigurationError, match="eta must be"):
        task.options(eta="tomorrow")  # type: ignore[arg-type]
