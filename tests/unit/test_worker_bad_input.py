"""In-process worker runs: bad messages are dead-lettered, never run, never retried blindly."""

from __future__ import annotations

from typing import Any

import pytest

import hurtle
from hurtle import App, Envelope, TaskFailed
from hurtle.brokers import Delivery, Message
from hurtle.envelope import encode
from hurtle.worker import settle as settle_module
from hurtle.worker.consumer import EXIT_OK
from hurtle.worker.dispatcher import Dispatcher

from .support import MakeApp, RunWorker, broker_of, dead_letters


def raw(message_id: str, body: bytes) -> Message:
    return Message(message_id, "default", body)


async def test_bad_messages_are_dead_lettered_while_valid_tasks_around_them_run(
    app: App, worker: RunWorker
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    first = add.send(1, 1)
    await broker_of(app).enqueue(
        [
            raw("m1", b"not json"),
            raw("m2", encode(Envelope(id="m2", task="nowhere.task"))),
            raw("m3", encode(Envelope(id="m3", task=add.name, args=[1]))),
        ]
    )
    last = add.send(2, 2)

    consumer = await worker(app)

    assert (first.result(timeout=5.0), last.result(timeout=5.0)) == (2, 4)
    reasons = sorted(letter.reason for letter in await dead_letters(app))
    assert [r.split(":")[0] for r in reasons] == [
        f"arguments do not bind to {add.name}",
        "undecodable message",
        "unknown task 'nowhere.task'",
    ]
    assert (consumer.counters.dead_lettered, consumer.counters.succeeded) == (3, 2)
    assert consumer.exit_code == EXIT_OK


async def test_a_task_with_bad_arguments_is_dead_lettered_with_the_reason(
    app: App, worker: RunWorker
) -> None:
    runs: list[int] = []

    @app.task(retries=5)
    def add(x: int, y: int) -> int:
        runs.append(1)
        return x + y

    # A sender without the task's code cannot check the call: the worker must.
    sender = App(app.broker_url)
    handle = sender.send_task(add.name, 1, 2, 3)
    sender.close()
    await worker(app)

    assert runs == []
    with pytest.raises(TaskFailed, match=f"arguments do not bind to {add.name}"):
        handle.result(timeout=5.0)
    (letter,) = await dead_letters(app)
    assert letter.reason.startswith(f"arguments do not bind to {add.name}: too many")


async def test_the_sender_of_an_unknown_task_hears_it_failed(app: App, worker: RunWorker) -> None:
    handle = app.send_task("nowhere.task", 1)

    await worker(app)

    with pytest.raises(TaskFailed, match=r"unknown task 'nowhere\.task'"):
        handle.result(timeout=5.0)


async def test_with_a_secret_key_an_unsigned_message_is_dead_lettered_never_run(
    make_app: MakeApp, worker: RunWorker
) -> None:
    app = make_app(secret_key="s3cret")
    runs: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        runs.append(1)
        return x + y

    signed = add.send(1, 2)
    await broker_of(app).enqueue([raw("u1", encode(Envelope(id="u1", task=add.name, args=[3, 4])))])

    await worker(app)

    assert signed.result(timeout=5.0) == 3
    assert runs == [1]
    (letter,) = await dead_letters(app)
    assert letter.reason == "unsigned message refused: the app has a secret_key"


async def test_with_a_secret_key_a_failed_task_is_retried(make_app: MakeApp, worker: RunWorker) -> None:
    app = make_app(secret_key="s3cret")
    runs: list[int] = []

    @app.task(retries=1, backoff=hurtle.Constant(0.01))
    def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("blip")
        return "ok"

    handle = flaky.send()
    await worker(app)

    assert runs == [1, 1]
    assert handle.result(timeout=5.0) == "ok"


async def test_a_message_whose_preparation_raises_is_dead_lettered_and_its_batch_runs(
    app: App, worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        runs.append(x)
        return x + y

    prepare = Dispatcher.prepare

    def crashing(self: Dispatcher, delivery: Delivery) -> Any:
        if delivery.body == b"boom":
            raise RecursionError("a bug that escaped prepare")
        return prepare(self, delivery)

    monkeypatch.setattr(Dispatcher, "prepare", crashing)
    first = add.send(1, 1)
    await broker_of(app).enqueue([raw("m1", b"boom")])
    last = add.send(2, 2)

    consumer = await worker(app)

    assert (first.result(timeout=5.0), last.result(timeout=5.0)) == (2, 4)
    assert runs == [1, 2]
    (letter,) = await dead_letters(app)
    assert letter.reason == "could not prepare the message: RecursionError: a bug that escaped prepare"
    assert consumer.exit_code == EXIT_OK


async def test_a_retry_that_cannot_be_encoded_is_dead_lettered_not_run_again(
    app: App, worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []

    @app.task(retries=3, backoff=hurtle.Constant(0.01))
    def flaky() -> None:
        runs.append(1)
        raise ConnectionError("blip")

    handle = flaky.send()

    def unencodable(envelope: Envelope, secret_key: bytes | None = None) -> bytes:
        raise TypeError("arguments nest too deeply to encode")

    monkeypatch.setattr(settle_module, "encode", unencodable)
    consumer = await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed, match="could not retry: arguments nest too deeply"):
        handle.result(timeout=5.0)
    (letter,) = await dead_letters(app)
    assert letter.reason == "ConnectionError: blip; could not retry: arguments nest too deeply to encode"
    assert consumer.counters.dead_lettered == 1
