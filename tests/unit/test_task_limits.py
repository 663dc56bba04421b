"""Rate and concurrency limits: how they are declared, and what a worker decides with them."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

import hurtle
from hurtle import App, ConfigurationError
from hurtle.limit_store import MemoryLimits
from hurtle.schedule.limits import FIRST_GUESS, MAX_WAIT, Limiter, check_limits_kept, permits_key
from hurtle.schedule.rates import Rate, parse_rate
from hurtle.worker.consumer import WorkerConfig
from hurtle.worker.startup import start_block

from .support import MakeApp, RunWorker, counts

# -- declaring ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period"), [("10/s", 10, 1.0), ("100/m", 100, 60.0), ("1000/h", 1000, 3600.0)]
)
def test_a_rate_is_a_count_per_second_minute_or_hour(text: str, count: int, period: float) -> None:
    assert parse_rate(text) == Rate(count, period, text)


def test_a_rate_spaces_its_starts_evenly() -> None:
    assert parse_rate("100/m").interval == pytest.approx(0.6)


@pytest.mark.parametrize("bad", ["100", "0/s", "-1/s", "1.5/s", "10/d", "10/sec", "ten/s", "", 10])
def test_a_rate_that_is_not_count_per_unit_is_refused_when_decorated(app: App, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit must be '<count>/<unit>'"):

        @app.task(rate_limit=bad)
        def call() -> None: ...


@pytest.mark.parametrize("bad", [0, -3, 1.5, "5", True])
def test_max_concurrency_must_be_a_positive_int(app: App, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency must be an int >= 1"):

        @app.task(max_concurrency=bad)
        def call() -> None: ...


def test_limits_belong_to_the_task_not_to_a_call(app: App) -> None:
    """A sender cannot lift a partner's limit: ``options`` takes no limits."""

    @app.task(rate_limit="10/s", max_concurrency=2)
    def call() -> None: ...

    with pytest.raises(TypeError):
        call.options(rate_limit="100/s")  # type: ignore[call-arg]
    assert call.options(delay=1.0).opts.rate_limit == parse_rate("10/s")


def test_a_periodic_task_may_be_limited(app: App) -> None:
    @app.periodic(every=60.0, max_concurrency=1)
    def sweep() -> None: ...

    assert sweep.opts.max_concurrency == 1


def test_the_start_block_lists_each_tasks_limits(app: App) -> None:
    @app.task(rate_limit="100/m", max_concurrency=5, name="call_partner")
    def call_partner() -> None: ...

    @app.task(name="plain")
    def plain() -> None: ...

    block = start_block(app, WorkerConfig(), 1)

    limits = "limits: rate 100/m, at most 5 at once"
    assert f"call_partner  queue default  sync, in the thread pool  {limits}" in block
    assert "plain         queue default  sync, in the thread pool\n" in block + "\n"


def test_a_rabbitmq_app_without_a_store_for_limits_is_refused() -> None:
    app = hurtle.App("amqp://guest:guest@127.0.0.1:5672/")

    @app.task(max_concurrency=5)
    def call() -> None: ...

    with pytest.raises(ConfigurationError, match="amqp keeps no limits: pass App\\(results=URL\\)"):
        check_limits_kept(app)
    check_limits_kept(hurtle.App("amqp://guest:guest@127.0.0.1:5672/", results="redis://127.0.0.1:6379/0"))


# -- what the limiter decides -----------------------------------------------------


def _jobs(count: int) -> list[Any]:
    """Stand-ins for jobs: the limiter counts them, keys their permits by their
    delivery, and hands them back."""
    return [SimpleNamespace(delivery=object()) for _ in range(count)]


async def test_a_rate_admits_one_and_spreads_the_rest_over_the_times_they_can_run(app: App) -> None:
    @app.task(rate_limit="2/s")
    def paced() -> None: ...

    limiter = Limiter(MemoryLimits(), "w", 30.0, owns_store=False)
    jobs = _jobs(5)

    admission = await limiter.admit(paced, jobs)

    assert [job for job, _ in admission.start] == jobs[:1]
    assert [job for job, _ in admission.wait] == jobs[1:]
    waits = [wait for _, wait in admission.wait]
    assert waits == pytest.approx([0.5, 1.0, 1.5, 2.0], abs=0.05)


async def test_a_concurrency_limit_admits_up_to_the_limit_and_backs_the_rest_off(app: App) -> None:
    @app.task(max_concurrency=2)
    def partner() -> None: ...

    store = MemoryLimits()
    limiter = Limiter(store, "w", 30.0, owns_store=False)

    admission = await limiter.admit(partner, _jobs(5))

    assert len(admission.start) == 2 and all(holder for _, holder in admission.start)
    assert await store.held(permits_key(partner.name)) == 2
    waits = [wait for _, wait in admission.wait]
    # One spell per two places ahead (with up to a quarter of jitter): the 3rd and
    # 4th wait one spell, the 5th two.
    assert all(FIRST_GUESS <= wait <= 1.25 * FIRST_GUESS for wait in waits[:2])
    assert 2 * FIRST_GUESS <= waits[2] <= 2.5 * FIRST_GUESS


async def test_a_finished_run_gives_its_permit_back(app: App) -> None:
    @app.task(max_concurrency=1)
    def partner() -> None: ...

    store = MemoryLimits()
    limiter = Limiter(store, "w", 30.0, owns_store=False)
    ((job, holder),) = (await limiter.admit(partner, _jobs(1))).start
    assert holder is not None and limiter.holders

    limiter.let_go(job)
    await limiter.close()  # what was given back is written by now

    assert await store.held(permits_key(partner.name)) == 0
    assert len((await limiter.admit(partner, _jobs(1))).start) == 1


async def test_a_rate_refusal_gives_back_the_permits_it_took(app: App) -> None:
    @app.task(rate_limit="1/h", max_concurrency=5)
    def both() -> None: ...

    store = MemoryLimits()
    limiter = Limiter(store, "w", 30.0, owns_store=False)

    admission = await limiter.admit(both, _jobs(3))

    assert len(admission.start) == 1
    assert await store.held(permits_key(both.name)) == 1


async def test_renewing_keeps_the_permits_of_running_tasks(app: App) -> None:
    @app.task(max_concurrency=1)
    def partner() -> None: ...

    store = MemoryLimits()
    limiter = Limiter(store, "w", 0.2, owns_store=False)
    await limiter.admit(partner, _jobs(1))
    limiter.lease = 3600.0

    await limiter.renew()
    await asyncio.sleep(0.3)  # past the first lease: without the renewal the permit is gone

    assert await store.held(permits_key(partner.name)) == 1


# -- in a worker ------------------------------------------------------------------


async def test_every_limited_task_runs_once_and_never_more_at_once_than_allowed(
    app: App, worker: RunWorker
) -> None:
    running = peak = 0

    @app.task(max_concurrency=2)
    async def partner(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return i

    handles = partner.send_many([(i,) for i in range(12)])
    await worker(app, concurrency=20)

    assert [h.result(timeout=5.0) for h in handles] == list(range(12))
    assert peak == 2
    assert (await counts(app)).pending == 0


async def test_a_task_over_its_limit_is_not_counted_as_an_attempt(app: App, worker: RunWorker) -> None:
    attempts: list[int] = []

    @app.task(max_concurrency=1, retries=0)
    async def partner(i: int) -> None:
        attempts.append(hurtle.current_task().attempt)
        await asyncio.sleep(0.01)

    partner.send_many([(i,) for i in range(4)])
    consumer = await worker(app, concurrency=10)

    assert attempts == [0, 0, 0, 0]
    assert consumer.counters.succeeded == 4


async def test_sync_tasks_keep_their_rate(app: App, worker: RunWorker) -> None:
    starts: list[float] = []

    @app.task(rate_limit="20/s")
    def paced() -> None:
        starts.append(time.time())

    paced.send_many([() for _ in range(6)])
    await worker(app, threads=8)

    assert len(starts) == 6
    # Six evenly spaced permits 0.05 s apart span 0.25 s; starts follow their permits.
    assert max(starts) - min(starts) >= 0.2


async def test_a_signed_message_waiting_for_its_limit_is_not_refused_as_too_old(
    make_app: MakeApp, worker: RunWorker
) -> None:
    app = make_app(secret_key=b"s" * 32, signature_max_age=0.5)

    @app.task(rate_limit="2/s")
    def paced(i: int) -> int:
        return i

    handles = paced.send_many([(i,) for i in range(3)])  # the third waits 1 s: past the 0.5 s
    consumer = await worker(app)

    assert [h.result(timeout=5.0) for h in handles] == [0, 1, 2]
    assert consumer.counters.dead_lettered == 0


async def test_a_process_that_never_got_a_permit_backs_off_further_each_time(app: App) -> None:
    """Another process holds every permit of a long task: this one must not ask
    every quarter second for as long as it runs."""

    @app.task(max_concurrency=1)
    def partner() -> None: ...

    store = MemoryLimits()
    await store.acquire(permits_key(partner.name), ["elsewhere"], 1, 3600.0)
    limiter = Limiter(store, "w", 30.0, owns_store=False)

    first_waits = [(await limiter.admit(partner, _jobs(1))).wait[0][1] for _ in range(8)]

    spells = [FIRST_GUESS * 2**i for i in range(5)] + [MAX_WAIT] * 3
    assert all(s <= w <= 1.25 * s for w, s in zip(first_waits, spells, strict=True)), first_waits
