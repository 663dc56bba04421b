"""The Dispatcher: every defect of a message is found before user code runs."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from hurtle import App, Envelope
from hurtle.brokers import Delivery
from hurtle.envelope import encode, make_envelope
from hurtle.worker.dispatcher import Dispatcher, Job
from hurtle.worker.outcome import DeadLetter

KEY = b"k"


def add(x: int, y: int) -> int:
    return x + y


def delivery(body: bytes, deliveries: int = 1) -> Delivery:
    return Delivery("default", body, deliveries, receipt=None)


def message(task: str, *args: Any, **kwargs: Any) -> bytes:
    return encode(Envelope(id="x1", task=task, args=list(args), kwargs=kwargs))


@pytest.fixture
def dispatcher(app: App) -> Dispatcher:
    app.task(name="maths.add")(add)
    return Dispatcher(app.tasks, max_deliveries=3, secret_key=None)


def dead_letter(prepared: Job | tuple[DeadLetter, Envelope | None]) -> tuple[str, Envelope | None]:
    assert not isinstance(prepared, Job), "the message was accepted"
    outcome, envelope = prepared
    return outcome.reason, envelope


def test_a_good_message_becomes_a_job_for_its_task(dispatcher: Dispatcher) -> None:
    job = dispatcher.prepare(delivery(message("maths.add", 1, y=2)))

    assert isinstance(job, Job)
    assert job.task is dispatcher.tasks["maths.add"]
    assert (job.envelope.args, job.envelope.kwargs, job.is_async) == ([1], {"y": 2}, False)


def test_an_undecodable_message_is_dead_lettered_with_the_reason(dispatcher: Dispatcher) -> None:
    reason, envelope = dead_letter(dispatcher.prepare(delivery(b"not json")))

    assert reason.startswith("undecodable message")
    assert envelope is None


def test_a_message_for_an_unknown_task_is_dead_lettered_naming_it(dispatcher: Dispatcher) -> None:
    reason, envelope = dead_letter(dispatcher.prepare(delivery(message("maths.rm", 1))))

    assert reason == "unknown task 'maths.rm': not registered with this app"
    assert envelope is not None and envelope.task == "maths.rm"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, 2, 3), {}), ((1, 2), {"z": 3}), ((1,), {"x": 2})],
)
def test_a_task_with_arguments_that_do_not_bind_is_dead_lettered_with_the_reason(
    dispatcher: Dispatcher, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    reason, envelope = dead_letter(dispatcher.prepare(delivery(message("maths.add", *args, **kwargs))))

    assert reason.startswith("arguments do not bind to maths.add: ")
    assert envelope is not None and envelope.id == "x1"


def test_a_message_delivered_more_than_max_deliveries_is_dead_lettered(
    dispatcher: Dispatcher,
) -> None:
    body = message("maths.add", 1, 2)

    assert isinstance(dispatcher.prepare(delivery(body, deliveries=3)), Job)
    reason, envelope = dead_letter(dispatcher.prepare(delivery(body, deliveries=4)))

    assert reason.startswith("delivered 4 times, over max_deliveries=3")
    assert envelope is not None and envelope.task == "maths.add"


def test_an_undecodable_message_over_max_deliveries_is_still_dead_lettered(
    dispatcher: Dispatcher,
) -> None:
    reason, envelope = dead_letter(dispatcher.prepare(delivery(b"not json", deliveries=9)))

    assert "over max_deliveries=3" in reason
    assert envelope is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"x1","task":"maths.add","args":[' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"id":"x1","task":"maths.add","headers":{"hurtle-sig":"\xc3\xa9"}}',
    ],
    ids=["nested-too-deep", "non-ascii-signature"],
)
@pytest.mark.parametrize("deliveries", [1, 9])
def test_a_message_that_once_crashed_the_worker_is_dead_lettered_however_often_delivered(
    app: App, body: bytes, deliveries: int
) -> None:
    app.task(name="maths.add")(add)
    dispatcher = Dispatcher(app.tasks, max_deliveries=3, secret_key=KEY)

    reason, envelope = dead_letter(dispatcher.prepare(delivery(body, deliveries)))

    assert reason.startswith("delivered 9 times" if deliveries == 9 else ("undecodable", "bad signature"))
    assert envelope is None


def test_a_defect_no_check_foresaw_dead_letters_that_message_alone(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    types = dispatcher.tasks["maths.add"].types

    def broken(args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise RuntimeError("a bug in a conversion")

    monkeypatch.setattr(types, "convert_call", broken)

    reason, envelope = dead_letter(dispatcher.prepare(delivery(message("maths.add", 1, 2))))

    assert reason == "could not prepare the message: RuntimeError: a bug in a conversion"
    assert envelope is not None and envelope.id == "x1", "so that its sender hears it failed"


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_message_with_a_time_limit_that_is_not_positive_is_dead_lettered(
    dispatcher: Dispatcher, timeout: float
) -> None:
    body = encode(Envelope(id="x1", task="maths.add", args=[1, 2], timeout=timeout))

    reason, _ = dead_letter(dispatcher.prepare(delivery(body)))

    assert reason == f"timeout must be a positive number of seconds, not {timeout!r}"


def test_with_a_secret_key_only_signed_messages_become_jobs(app: App) -> None:
    app.task(name="maths.add")(add)
    dispatcher = Dispatcher(app.tasks, max_deliveries=3, secret_key=KEY)
    envelope = Envelope(id="x1", task="maths.add", args=[1, 2])

    assert isinstance(dispatcher.prepare(delivery(encode(envelope, KEY))), Job)
    reason, _ = dead_letter(dispatcher.prepare(delivery(encode(envelope))))
    assert reason == "unsigned message refused: the app has a secret_key"
    reason, _ = dead_letter(dispatcher.prepare(delivery(encode(envelope, b"other key"))))
    assert reason == "bad signature: message refused"


def test_with_a_signature_max_age_an_old_signed_message_is_dead_lettered(app: App) -> None:
    app.task(name="maths.add")(add)
    dispatcher = Dispatcher(app.tasks, max_deliveries=3, secret_key=KEY, signature_max_age=60.0)
    fresh = make_envelope("maths.add", [1, 2], {}, queue="default")
    replayed = make_envelope("maths.add", [1, 2], {}, queue="default", now=time.time() - 3600)

    assert isinstance(dispatcher.prepare(delivery(encode(fresh, KEY))), Job)
    reason, envelope = dead_letter(dispatcher.prepare(delivery(encode(replayed, KEY))))
    assert re.match(r"signed message refused as a possible replay: due 36\d\ds ago", reason)
    assert envelope is None


def test_a_jobs_time_limit_is_its_messages_own_else_its_tasks(app: App) -> None:
    app.task(name="maths.slow", timeout=9.0)(add)
    dispatcher = Dispatcher(app.tasks, max_deliveries=3, secret_key=None)

    def timeout_of(envelope_timeout: float | None) -> float | None:
        envelope = Envelope(id="x1", task="maths.slow", args=[1, 2], timeout=envelope_timeout)
        job = dispatcher.prepare(delivery(encode(envelope)))
        assert isinstance(job, Job)
        return job.timeout

    assert (timeout_of(2.5), timeout_of(None)) == (2.5, 9.0)
