"""Sending: what ``send``, ``send_many``, ``send_task`` and the async forms put on the queue."""

from __future__ import annotations

import time

import pytest

from hurtle import App, MessageTooLarge
from hurtle.envelope import SIGNATURE_HEADER, Envelope

from .support import MakeApp, counts, sent


def add(x: int, y: int = 0) -> int:
    return x + y


def echo(text: str) -> str:
    return text


async def test_send_enqueues_one_message_and_returns_its_handle(app: App) -> None:
    task = app.task(add)
    before = time.time()

    handle = task.send(1, y=2)

    (envelope,) = await sent(app)
    assert handle.id == envelope.id
    assert handle.task_name == envelope.task == task.name
    assert (envelope.args, envelope.kwargs, envelope.queue) == ([1], {"y": 2}, "default")
    assert before <= envelope.enqueued_at <= time.time()
    assert (envelope.eta, envelope.timeout, envelope.attempt) == (None, None, 0)


async def test_a_task_is_sent_to_its_queue_with_its_timeout(app: App) -> None:
    task = app.task(queue="io", timeout=2.5)(add)

    task.send(1)

    (envelope,) = await sent(app, "io")
    assert envelope.timeout == 2.5


async def test_options_send_a_delayed_call_or_one_with_another_timeout_elsewhere(
    app: App,
) -> None:
    task = app.task(add)

    task.options(delay=60.0, queue="low").send(1, 2)
    task.options(queue="low", timeout=1.5).send(3)

    stats = await counts(app, "low")
    assert (stats.ready, stats.delayed) == (1, 1)
    assert (await counts(app, "default")).pending == 0
    (ready,) = await sent(app, "low")
    assert (ready.args, ready.timeout) == ([3], 1.5)


async def test_send_many_sends_tuples_and_dicts_in_one_batch_in_order(app: App) -> None:
    task = app.task(add)

    handles = task.send_many([(1, 2), {"x": 3, "y": 4}, [5], {"x": 6}])

    envelopes = await sent(app)
    assert [h.id for h in handles] == [e.id for e in envelopes]
    assert [(e.args, e.kwargs) for e in envelopes] == [
        ([1, 2], {}),
        ([], {"x": 3, "y": 4}),
        ([5], {}),
        ([], {"x": 6}),
    ]


async def test_send_many_refuses_a_string_for_a_call_and_sends_nothing(app: App) -> None:
    task = app.task(add)

    with pytest.raises(TypeError, match="tuple or a dict"):
        task.send_many([(1, 2), "12"])

    assert (await counts(app)).pending == 0


async def test_a_message_over_max_message_bytes_is_refused_at_send(make_app: MakeApp) -> None:
    app = make_app(max_message_bytes=300)
    task = app.task(echo)

    with pytest.raises(MessageTooLarge, match="max_message_bytes=300"):
        task.send("x" * 1000)
    with pytest.raises(MessageTooLarge):
        task.send_many([("x",), ("x" * 1000,)])

    assert (await counts(app)).pending == 0
    task.send("x")
    assert (await counts(app)).ready == 1


async def test_an_argument_that_is_not_json_is_refused_at_send(app: App) -> None:
    task = app.task(add)

    with pytest.raises(TypeError, match="not JSON-encodable"):
        task.send(object())  # type: ignore[arg-type]

    assert (await counts(app)).pending == 0


async def test_send_task_sends_by_name_with_the_registered_options(app: App) -> None:
    task = app.task(name="maths.add", queue="io", timeout=3.0)(add)

    handle = app.send_task("maths.add", 1, y=2)

    (envelope,) = await sent(app, "io")
    assert (handle.id, handle.task_name) == (envelope.id, task.name)
    assert (envelope.args, envelope.kwargs, envelope.timeout) == ([1], {"y": 2}, 3.0)


async def test_send_task_sends_an_unknown_name_to_the_default_queue(make_app: MakeApp) -> None:
    app = make_app(default_queue="main")

    app.send_task("elsewhere.resize", "photo.jpg", width=100)

    (envelope,) = await sent(app, "main")
    assert (envelope.task, envelope.args, envelope.kwargs) == (
        "elsewhere.resize",
        ["photo.jpg"],
        {"width": 100},
    )


async def test_the_async_forms_send_the_same_messages(app: App) -> None:
    task = app.task(name="maths.add")(add)

    one = await task.send_async(1, 2)
    many = await task.send_many_async([(3,), {"x": 4}])
    by_name = await app.send_task_async("maths.add", 5)

    envelopes = await sent(app)
    assert [e.id for e in envelopes] == [one.id, *(h.id for h in many), by_name.id]
    assert [(e.args, e.kwargs) for e in envelopes] == [
        ([1, 2], {}),
        ([3], {}),
        ([], {"x": 4}),
        ([5], {}),
    ]


async def test_an_app_with_a_secret_key_signs_what_it_sends(make_app: MakeApp) -> None:
    app = make_app(secret_key="s3cret")
    task = app.task(add)

    task.send(1, 2)
    await task.send_async(3, 4)

    assert all(SIGNATURE_HEADER in e.headers for e in await sent(app))


def test_result_without_a_worker_times_out(app: App) -> None:
    handle = app.task(add).send(1, 2)

    with pytest.raises(TimeoutError, match=handle.id):
        handle.result(timeout=0.1)


async def test_a_task_sends_through_its_apps_client_alone(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    task = app.task(add)
    handed: list[list[str]] = []

    async def send_async(envelopes: list[Envelope]) -> None:
        handed.append([e.id for e in envelopes])

    monkeypatch.setattr(app.client, "send", lambda envelopes: handed.append([e.id for e in envelopes]))
    monkeypatch.setattr(app.client, "send_async", send_async)

    handles = [task.send(1), await task.send_async(2), *task.send_many([(3,), (4,)])]
    handles += await task.send_many_async([(5,)])

    assert handed == [[handles[0].id], [handles[1].id], [handles[2].id, handles[3].id], [handles[4].id]]
    assert await sent(app) == []
