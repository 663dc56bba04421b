"""Arguments and results arrive as they were sent, or are refused at ``send``."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hurtle import App, TaskFailed
from hurtle.brokers import Message
from hurtle.envelope import Envelope, encode

from .support import RunWorker, broker_of, counts, dead_letters

UTC = datetime.timezone.utc


def untyped(value):  # type: ignore[no-untyped-def]
    return value


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 1, 2, 3, 4, 5),
        datetime.date(2026, 1, 2),
        {1, 2},
        (1, 2),
        Decimal("1.5"),
        uuid.UUID(int=7),
        b"\x00\x01",
        math.nan,
        math.inf,
        -math.inf,
        {1: "a"},
        [(1, 2)],
        {"nested": [{"deep": (1,)}]},
    ],
    ids=repr,
)
async def test_an_unannotated_argument_json_would_change_is_refused_at_send(app: App, value: Any) -> None:
    task = app.task(untyped)

    with pytest.raises(TypeError, match="argument 'value'"):
        task.send(value)
    with pytest.raises(TypeError, match="argument 'value'"):
        task.send_many([(1,), (value,)])
    with pytest.raises(TypeError, match="argument 'value'"):
        app.send_task(task.name, value=value)

    assert (await counts(app)).pending == 0


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, int]


class Box(msgspec.Struct):
    size: float
    tags: frozenset[str]


TYPED_CALLS = [
    ("when", datetime.datetime, datetime.datetime(2026, 1, 2, 3, 4, 5)),
    ("when", datetime.datetime, datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ("day", datetime.date, datetime.date(2026, 1, 2)),
    ("tags", set[int], {1, 2}),
    ("pair", tuple[int, str], (1, "a")),
    ("amount", Decimal, Decimal("10.25")),
    ("ident", uuid.UUID, uuid.UUID(int=7)),
    ("blob", bytes, b"\x00\xff"),
    ("names", dict[int, str], {1: "a", 2: "b"}),
    ("colour", Colour, Colour.RED),
    ("point", Point, Point(1, (2, 3))),
    ("box", Box, Box(1.5, frozenset({"a"}))),
    ("ratio", float, 2),
]


@pytest.mark.parametrize(("name", "annotation", "value"), TYPED_CALLS, ids=lambda v: repr(v))
async def test_an_annotated_argument_and_result_arrive_as_sent(
    app: App, worker: RunWorker, name: str, annotation: Any, value: Any
) -> None:
    received: list[Any] = []

    def identity(arg: Any) -> Any:
        received.append(arg)
        return arg

    identity.__annotations__ = {"arg": annotation, "return": annotation}
    identity.__name__ = identity.__qualname__ = f"identity_{name}"
    task = app.task(identity)

    handle = task.send(value)
    await worker(app)

    assert received == [value]
    assert type(received[0]) is type(value) or annotation is float
    result = handle.result(timeout=5.0)
    assert result == value
    assert type(result) is (float if annotation is float else type(value))


def add(x: int, y: int) -> int:
    return x + y


async def test_a_call_that_does_not_bind_is_refused_at_send(app: App) -> None:
    task = app.task(add)

    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        task.send(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        task.send(1, 2, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="too many positional arguments"):
        app.send_task(task.name, 1, 2, 3)

    assert (await counts(app)).pending == 0


async def test_an_argument_that_does_not_fit_its_annotation_is_refused_at_send(app: App) -> None:
    task = app.task(add)

    with pytest.raises(TypeError, match=r"argument 'y' does not fit its annotation int"):
        task.send(1, "2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"argument 'x' does not fit"):
        task.send(True, 2)


async def test_a_foreign_message_whose_argument_does_not_fit_is_dead_lettered_unrun(
    app: App, worker: RunWorker
) -> None:
    runs: list[Any] = []

    @app.task
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    # What a producer in another language might send: a string for an int.
    envelope = Envelope(id="f" * 32, task=double.name, args=["2"])
    await broker_of(app).enqueue([Message(envelope.id, "default", encode(envelope))])
    await worker(app)

    assert runs == []
    (letter,) = await dead_letters(app)
    assert "argument 'x' does not fit int" in letter.reason


async def test_a_result_that_json_would_change_fails_the_task_without_retries(
    app: App, worker: RunWorker
) -> None:
    runs: list[int] = []

    @app.task(retries=3)
    def pair():  # type: ignore[no-untyped-def]
        runs.append(1)
        return (1, 2)

    @app.task(retries=3)
    def typed_pair() -> tuple[int, int]:
        return (1, 2)

    refused, kept = pair.send(), typed_pair.send()
    await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed, match="its return value would arrive as \\[1, 2\\]"):
        refused.result(timeout=5.0)
    assert kept.result(timeout=5.0) == (1, 2)


async def test_a_task_sent_by_name_from_an_app_without_its_code_gets_typed_arguments(
    app: App, worker: RunWorker
) -> None:
    received: list[Any] = []

    @app.task
    def at(when: datetime.datetime) -> None:
        received.append(when)

    sender = App(app.broker_url)  # no tasks registered: it cannot know ``when``'s type
    sender.send_task(at.name, "2026-01-02T03:04:05")
    sender.close()
    await worker(app)

    assert received == [datetime.datetime(2026, 1, 2, 3, 4, 5)]


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))  # JSON has no lone surrogate
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_any_json_value_is_accepted_unannotated(app: App, value: Any) -> None:
    app.task(untyped).types.check_call((value,), {})


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(
    st.tuples(st.integers()), st.sets(st.integers(), min_size=1), st.binary(),
    st.datetimes(), st.decimals(allow_nan=False), st.uuids(),
))
def test_a_value_json_would_change_is_refused_unannotated(app: App, value: Any) -> None:
    with pytest.raises(TypeError):
        app.task(untyped).types.check_call((value,), {})
