"""Workflows on every store: chains, groups and chords, their failure rules, and
a step run twice after a crash. Tasks run in this process (``hurtle.testing.drain``,
the real consumer) against real brokers; RabbitMQ keeps workflow state in its
``results=`` store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hurtle
from hurtle.brokers import broker_class
from hurtle.record_source import open_records
from hurtle.testing import drain
from hurtle.workflows.advance import FlowSteps
from hurtle.workflows.plan import NO_INPUT, start
from tests.amqp_server import unique_amqp_url
from tests.redis_server import unique_redis_url

app = hurtle.App("memory://workflows-idle")

_lock = threading.Lock()
RUNS: Counter[str] = Counter()  # "task:argument" -> how many times it ran
CALLS: list[tuple[str, ...]] = []  # what the callbacks and handlers were called with


def ran(what: str) -> None:
    with _lock:
        RUNS[what] += 1


@app.task
def add(x: int, y: int) -> int:
    ran(f"add:{x}+{y}")
    return x + y


@app.task
def double(x: int) -> int:
    ran(f"double:{x}")
    return 2 * x


@app.task(store_result=False)
def square(x: int) -> int:
    ran(f"square:{x}")
    return x * x


@app.task
def total(values: list[int]) -> int:
    ran("total")
    with _lock:
        CALLS.append(("total", *map(str, values)))
    return sum(values)


@app.task
def const(value: str) -> str:
    ran(f"const:{value}")
    return value


@app.task(retries=0)
def explode(x: int) -> int:
    ran(f"explode:{x}")
    raise ValueError(f"exploded on {x}")


@app.task(retries=2, backoff=hurtle.Constant(0.0))
def flaky(x: int) -> int:
    """Fails its first attempt, then succeeds."""
    ran(f"flaky:{x}")
    if hurtle.current_task().attempt == 0:
        raise OSError("first attempt fails")
    return x


@app.task
def on_failure(task_id: str, error: str) -> None:
    with _lock:
        CALLS.append(("on_failure", task_id, error))


@app.task
def on_failure_alone(note: str) -> None:
    with _lock:
        CALLS.append(("on_failure_alone", note))


@app.task
def pair(x: int) -> tuple[int, str]:
    return x, str(x)


@app.task
def big(size: int) -> str:
    return "x" * size


STORES: dict[str, Callable[[Path], tuple[str, str | None]]] = {
    "memory": lambda tmp: (f"memory://workflows-{time.monotonic_ns()}", None),
    "sqlite": lambda tmp: (f"sqlite:///{tmp}/broker.db", None),
    "redis": lambda tmp: (unique_redis_url(), None),
    "amqp+sqlite": lambda tmp: (unique_amqp_url(), f"sqlite:///{tmp}/results.db"),
}


@pytest.fixture(params=sorted(STORES))
def flows(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[hurtle.App]:
    broker, results = STORES[request.param](tmp_path)
    app.use_broker(broker, results=results)
    RUNS.clear()
    CALLS.clear()
    try:
        yield app
    finally:
        app.use_broker("memory://workflows-idle")


def run_all(flows: hurtle.App) -> None:
    drain(flows, timeout=60.0)


def test_a_chain_passes_each_result_to_the_next_step_as_its_first_argument(flows: hurtle.App) -> None:
    handle = (add.s(1, 2) | add.s(10) | double.s()).send()

    run_all(flows)

    assert handle.result() == 26
    assert [child.result() for child in handle.children] == [3, 13, 26]


def test_si_makes_a_step_ignore_the_result_before_it(flows: hurtle.App) -> None:
    handle = (add.s(1, 2) | const.si("fresh") | const.si("last")).send()

    run_all(flows)

    assert handle.result() == "last"
    assert RUNS["const:fresh"] == 1


def test_a_group_runs_its_members_and_gives_their_results_in_order(flows: hurtle.App) -> None:
    handle = hurtle.group(double.s(i) for i in range(5)).send()

    run_all(flows)

    assert handle.result() == [0, 2, 4, 6, 8]
    assert [child.result() for child in handle.children] == [0, 2, 4, 6, 8]


def test_a_chord_calls_its_callback_once_with_every_member_result_in_order(flows: hurtle.App) -> None:
    handle = hurtle.chord(hurtle.group(double.s(i) for i in range(20)), total.s()).send()

    run_all(flows)

    assert handle.result() == sum(2 * i for i in range(20))
    calls = list(CALLS)
    assert calls == [("total", *(str(2 * i) for i in range(20)))]
    assert len(handle.children) == 20


def test_member_results_reach_the_callback_when_the_tasks_keep_no_results(flows: hurtle.App) -> None:
    handle = hurtle.chord([square.s(i) for i in range(4)], total.s()).send()

    run_all(flows)

    assert handle.result() == 0 + 1 + 4 + 9


def test_chains_groups_and_chords_nest(flows: hurtle.App) -> None:
    inner = hurtle.chord([double.s(), add.s(1) | double.s()], total.s())
    handle = (add.s(1, 1) | inner | hurtle.group([double.s(), add.s(100)])).send()

    run_all(flows)

    # 2 -> [4, (2+1)*2=6] -> 10 -> [20, 110]
    assert handle.result() == [20, 110]


def test_a_step_that_fails_for_good_fails_the_chain_and_the_steps_after_it_never_run(
    flows: hurtle.App,
) -> None:
    handle = (add.s(1, 2) | explode.s() | double.s() | double.s()).send()

    run_all(flows)

    with pytest.raises(hurtle.TaskFailed, match="exploded on 3"):
        handle.result()
    assert [k for k in RUNS if k.startswith("double")] == []
    assert handle.children[-1].status() == "failed"  # the last step's handle does not wait for ever


def test_a_member_that_fails_for_good_fails_the_chord_and_on_failure_is_called_once(
    flows: hurtle.App,
) -> None:
    members = [double.s(1), explode.s(2), explode.s(3), double.s(4)]
    handle = hurtle.chord(members, total.s(), on_failure=on_failure.s()).send()

    run_all(flows)

    with pytest.raises(hurtle.TaskFailed, match="exploded on"):
        handle.result()
    assert RUNS["total"] == 0
    [(what, failed_id, error)] = CALLS
    failed = {handle.children[1].id: "exploded on 2", handle.children[2].id: "exploded on 3"}
    assert what == "on_failure" and failed_id in failed and failed[failed_id] in error


def test_retries_of_a_member_do_not_rerun_the_members_that_succeeded(flows: hurtle.App) -> None:
    handle = hurtle.chord([double.s(1), flaky.s(5), double.s(2)], total.s()).send()

    run_all(flows)

    assert handle.result() == 2 + 5 + 4
    assert (RUNS["flaky:5"], RUNS["double:1"], RUNS["double:2"], RUNS["total"]) == (2, 1, 1, 1)


def test_a_member_run_again_after_its_chord_completed_is_counted_once_and_the_callback_runs_once(
    flows: hurtle.App,
) -> None:
    # A worker that dies after recording a member and before acknowledging it runs
    # the member again: it finds the set complete and sends the callback again.
    chord = hurtle.chord([double.s(i) for i in range(3)], total.s())
    handle = chord.send()
    run_all(flows)
    node = handle.node
    [member, *_] = start(node, NO_INPUT, [], handle.id, time.time(), copy=False)

    async def run_member_again() -> None:
        connection = flows.client.new_connection()
        store = open_records(flows.broker_url, flows.results_url)
        try:
            steps = FlowSteps(flows, connection.broker, connection.results, lambda: store, "test")
            await steps.succeeded(member, 0)
        finally:
            await connection.close()
            if store is not None:
                await store.close()

    asyncio.run(run_member_again())
    run_all(flows)

    assert RUNS["total"] == 1
    assert handle.result() == 0 + 2 + 4


def test_a_workflow_on_rabbitmq_without_a_result_store_is_refused_at_send() -> None:
    app.use_broker(unique_amqp_url())
    try:
        with pytest.raises(hurtle.ConfigurationError, match="keeps none"):
            (add.s(1, 2) | double.s()).send()
    finally:
        app.use_broker("memory://workflows-idle")


def test_a_group_result_arrives_as_its_members_return_types(flows: hurtle.App) -> None:
    handle = hurtle.group([pair.s(1), pair.s(2)]).send()

    run_all(flows)

    assert handle.result() == [(1, "1"), (2, "2")]


def test_a_workflow_is_queued_until_it_runs_then_succeeded(flows: hurtle.App) -> None:
    handle = (add.s(1, 2) | double.s()).send()
    waiting = handle.status()

    run_all(flows)

    assert waiting == ("queued" if broker_class(flows.broker_url).locates_messages else "unknown")
    assert handle.status() == "succeeded"


def test_an_on_failure_handler_made_with_si_is_given_only_its_own_arguments(flows: hurtle.App) -> None:
    handle = hurtle.chord([explode.s(1)], total.s(), on_failure=on_failure_alone.si("chord lost")).send()

    run_all(flows)

    with pytest.raises(hurtle.TaskFailed):
        handle.result()
    assert list(CALLS) == [("on_failure_alone", "chord lost")]


def test_a_callback_too_large_to_send_fails_the_chord_saying_why(
    flows: hurtle.App, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flows, "max_message_bytes", 4000)
    handle = hurtle.chord([big.s(1500) for _ in range(3)], total.s()).send()

    run_all(flows)

    with pytest.raises(hurtle.TaskFailed, match="max_message_bytes=4000"):
        handle.result()
    assert RUNS["total"] == 0


def test_a_cancelled_workflow_fails_and_its_later_steps_never_run(flows: hurtle.App) -> None:
    handle = (add.s(1, 2) | double.s() | double.s()).send()

    handle.cancel()
    run_all(flows)

    with pytest.raises(hurtle.TaskFailed, match="cancelled"):
        handle.result()
    assert not RUNS
