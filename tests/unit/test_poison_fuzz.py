"""Generated poison (tests/hostile/poison_bodies.py): whatever the bytes, the
dispatcher answers with a Job or a dead letter and never raises, and a worker
dead-letters every bad body while the innocent ones fetched with them run once."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hurtle import App
from hurtle.brokers import Delivery
from hurtle.worker.dispatcher import Dispatcher, Job
from hurtle.worker.outcome import DeadLetter
from tests.hostile.poison_bodies import KEY, TASK, Batch, Body, bad_body, batches, odd_innocent

from .support import MakeApp, RunWorker, broker_of

MAX_DELIVERIES = 3
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)


def dispatcher(app: App, signed: bool, max_age: float | None = None) -> Dispatcher:
    if TASK not in app.tasks:
        @app.task(name=TASK)
        def innocent(tag: str, *rest: Any) -> None:
            pass

    return Dispatcher(app.tasks, max_deliveries=MAX_DELIVERIES, secret_key=KEY if signed else None,
                      signature_max_age=max_age)


def refused(prepared: Job | tuple[DeadLetter, Any]) -> str:
    assert not isinstance(prepared, Job), "a bad body was accepted"
    letter, _ = prepared
    assert isinstance(letter, DeadLetter) and letter.reason
    return letter.reason


@FUZZ
@given(data=st.data(), signed=st.booleans(), deliveries=st.integers(0, 2 * MAX_DELIVERIES))
def test_whatever_the_bytes_prepare_returns_a_job_or_a_dead_letter_and_never_raises(
    app: App, data: st.DataObject, signed: bool, deliveries: int
) -> None:
    any_bytes = st.binary().map(lambda b: Body("bytes", b))
    body = data.draw(st.one_of(bad_body(signed), odd_innocent(signed), any_bytes))
    max_age = data.draw(st.none() | st.floats(1e-3, 1e12)) if signed else None

    prepared = dispatcher(app, signed, max_age).prepare(Delivery("q", body.data, deliveries, receipt=None))

    if not isinstance(prepared, Job):
        refused(prepared)


@FUZZ
@given(data=st.data(), signed=st.booleans(), deliveries=st.integers(0, 2 * MAX_DELIVERIES))
def test_every_bad_body_is_refused_with_a_reason_however_often_delivered(
    app: App, data: st.DataObject, signed: bool, deliveries: int
) -> None:
    body = data.draw(bad_body(signed))

    refused(dispatcher(app, signed).prepare(Delivery("q", body.data, deliveries, receipt=None)))


@FUZZ
@given(data=st.data(), signed=st.booleans())
def test_every_odd_but_valid_body_becomes_a_job(app: App, data: st.DataObject, signed: bool) -> None:
    body = data.draw(odd_innocent(signed))

    prepared = dispatcher(app, signed).prepare(Delivery("q", body.data, 1, receipt=None))

    assert isinstance(prepared, Job), prepared


@settings(FUZZ, max_examples=40)
@given(data=st.data(), signed=st.booleans())
async def test_a_worker_dead_letters_every_bad_body_and_runs_each_innocent_once(
    make_app: MakeApp, worker: RunWorker, data: st.DataObject, signed: bool
) -> None:
    bad, innocents = data.draw(batches(signed))
    app = make_app(secret_key=KEY if signed else None)
    batch = Batch(app, f"fuzz-{uuid.uuid4().hex}", bad, innocents)
    broker = broker_of(app)
    await batch.write(broker)

    consumer = await worker(app, queues=[batch.queue])

    await batch.check(consumer, broker)
