"""Values nest at most ``MAX_NESTING`` lists and dicts deep: deeper is refused at
``send``, fails a task's result, and is dead-lettered by a worker."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hurtle import App, TaskFailed
from hurtle.arguments import MAX_NESTING
from hurtle.brokers import Message

from .support import RunWorker, broker_of, counts, dead_letters


def tower(levels: int, leaf: Any = 1) -> Any:
    """``levels`` lists, one inside the other, around ``leaf``."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def dict_tower(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


def untyped(value):  # type: ignore[no-untyped-def]
    return value


def nested_list(value: list[Any]) -> None:
    pass


@dataclasses.dataclass
class Node:
    child: Node | None


async def test_an_argument_nested_as_deep_as_the_limit_is_sent(app: App) -> None:
    task = app.task(untyped)

    task.send(tower(MAX_NESTING))
    task.send(dict_tower(MAX_NESTING))

    assert (await counts(app)).pending == 2


@pytest.mark.parametrize("value", [tower(MAX_NESTING + 1), dict_tower(MAX_NESTING + 1),
                                   [1, "two", {"deep": tower(MAX_NESTING)}], tower(10_000)],
                         ids=["lists", "dicts", "mixed", "ten-thousand"])
async def test_an_argument_nested_deeper_than_the_limit_is_refused_at_send_naming_it(
    app: App, value: Any
) -> None:
    task = app.task(untyped)
    too_deep = f"argument 'value' nests deeper than {MAX_NESTING} levels"

    with pytest.raises(TypeError, match=too_deep):
        task.send(value)
    with pytest.raises(TypeError, match=too_deep):
        task.send_many([(1,), (value,)])
    with pytest.raises(TypeError, match=too_deep):
        await task.send_async(value=value)
    with pytest.raises(TypeError, match=too_deep):
        app.send_task(task.name, value)

    assert (await counts(app)).pending == 0


async def test_an_annotated_argument_nested_too_deep_is_refused_at_send(app: App) -> None:
    task = app.task(nested_list)

    with pytest.raises(TypeError, match=f"argument 'value' nests deeper than {MAX_NESTING}"):
        task.send(tower(MAX_NESTING + 1))


async def test_a_task_sent_by_name_without_its_code_is_refused_when_nested_too_deep(app: App) -> None:
    too_deep = f"nests deeper than {MAX_NESTING} levels"
    with pytest.raises(TypeError, match=f"elsewhere.task: positional argument 1 {too_deep}"):
        app.send_task("elsewhere.task", 1, tower(MAX_NESTING + 1))
    with pytest.raises(TypeError, match=f"elsewhere.task: argument 'x' {too_deep}"):
        app.send_task("elsewhere.task", x=dict_tower(MAX_NESTING + 1))

    assert (await counts(app)).pending == 0


async def test_nesting_through_objects_too_deep_to_encode_is_refused_at_send(app: App) -> None:
    def walk(node: Node) -> None:
        pass

    deep: Node | None = None
    for _ in range(5_000):
        deep = Node(deep)
    task = app.task(walk)

    with pytest.raises(TypeError, match="argument 'node' nests deeper than"):
        task.send(deep)  # type: ignore[arg-type]


async def test_a_result_nested_too_deep_fails_the_task_with_the_reason(app: App, worker: RunWorker) -> None:
    @app.task(retries=2)
    def deep() -> Any:
        return tower(MAX_NESTING + 1)

    handle = deep.send()
    consumer = await worker(app)

    with pytest.raises(TaskFailed, match=f"its return value nests deeper than {MAX_NESTING}"):
        handle.result(timeout=5.0)
    assert (consumer.counters.failed, consumer.counters.retried) == (1, 0)


async def test_a_worker_dead_letters_a_message_nested_deeper_than_the_limit(
    app: App, worker: RunWorker
) -> None:
    runs: list[Any] = []

    @app.task(name="nest.run")
    def run(value: Any) -> None:
        runs.append(value)

    # From a producer elsewhere: deep enough to break the limit, not the decoder.
    body = b'{"id":"n1","task":"nest.run","args":[' + b"[" * 200 + b"]" * 200 + b"]}"
    await broker_of(app).enqueue([Message("n1", "default", body)])

    await worker(app)

    assert runs == []
    (letter,) = await dead_letters(app)
    assert letter.reason == (
        f"arguments do not fit: nest.run: positional argument 0 nests deeper than {MAX_NESTING}"
        " levels of lists and dicts, the most a message may carry"
    )
