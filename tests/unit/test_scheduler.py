"""The scheduler (``hurtle.schedule``): one leader at a time enqueues each tick,
and a tick enqueued twice (its leader died before recording it) runs once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import hurtle
from hurtle.brokers.memory import MemoryBroker
from hurtle.records import MemoryRecords, RecordStore
from hurtle.schedule.lease import Lease, leader_key, leader_name
from hurtle.schedule.scheduler import Scheduler, last_key, read_last
from hurtle.schedule.ticks import COPY_HEADER, TICK_HEADER, first_copy, tick_id
from hurtle.testing import drain_async

from ..contract.support import eventually
from .support import MakeApp, sent

LEASE = 30.0
START = 1_800_000_000.0  # unix seconds, on a whole second
KEY = leader_key(["tasks.sweep"])


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store_of(app: hurtle.App) -> RecordStore:
    store = MemoryBroker(app.broker_url).record_store()
    assert store is not None
    return store


def ticks_of(envelopes: Sequence[hurtle.Envelope]) -> list[int]:
    return [int(envelope.headers[TICK_HEADER]) for envelope in envelopes]


@pytest.fixture
def every_second(make_app: MakeApp) -> hurtle.App:
    app = make_app()

    @app.periodic(every=1.0)
    def beat() -> None:
        pass

    return app


async def test_a_new_schedule_sends_nothing_before_its_first_tick(every_second: hurtle.App) -> None:
    clock = Clock(START + 0.5)
    scheduler = Scheduler(every_second, store_of(every_second), LEASE, clock)

    await scheduler.step()

    assert await sent(every_second) == []


async def test_the_leader_sends_each_tick_once_as_time_passes(every_second: hurtle.App) -> None:
    clock = Clock(START + 0.5)
    scheduler = Scheduler(every_second, store_of(every_second), LEASE, clock)
    await scheduler.step()

    for now in (START + 1.0, START + 1.2, START + 2.0, START + 2.9, START + 3.1):
        clock.now = now
        await scheduler.step()

    assert ticks_of(await sent(every_second)) == [int((START + n) * 1000) for n in (1, 2, 3)]


async def test_a_tick_message_has_the_id_of_its_schedule_and_tick(every_second: hurtle.App) -> None:
    clock = Clock(START + 0.5)
    scheduler = Scheduler(every_second, store_of(every_second), LEASE, clock)
    await scheduler.step()
    clock.now = START + 1.0
    await scheduler.step()

    (envelope,) = await sent(every_second)
    (name,) = every_second.schedules

    assert envelope.id == tick_id(name, int((START + 1) * 1000))
    assert envelope.task == every_second.schedules[name].task


async def test_only_the_holder_of_the_lease_sends(every_second: hurtle.App) -> None:
    clock = Clock(START + 0.5)
    store = store_of(every_second)
    workers = [Scheduler(every_second, store, LEASE, clock) for _ in range(3)]
    for worker in workers:
        await worker.step()

    clock.now = START + 1.0
    for worker in workers:
        await worker.step()

    assert [worker.lease.held for worker in workers] == [True, False, False]
    assert len(await sent(every_second)) == 1


async def test_the_leader_sleeps_until_the_next_tick_and_a_follower_until_the_renewal(
    every_second: hurtle.App,
) -> None:
    clock = Clock(START + 0.25)
    store = store_of(every_second)
    leader = Scheduler(every_second, store, LEASE, clock)
    follower = Scheduler(every_second, store, LEASE, clock)

    assert await leader.step() == pytest.approx(0.75)
    assert await follower.step() == pytest.approx(LEASE / 3)


async def test_missed_ticks_with_skip_send_the_latest_alone(make_app: MakeApp) -> None:
    app = make_app()

    @app.periodic(every=1.0, catch_up="skip")
    def beat() -> None:
        pass

    clock = Clock(START + 0.5)
    scheduler = Scheduler(app, store_of(app), LEASE, clock)
    await scheduler.step()
    clock.now = START + 10.5  # no worker ran for ten ticks

    await scheduler.step()

    assert ticks_of(await sent(app)) == [int((START + 10) * 1000)]


async def test_missed_ticks_with_all_send_each_one_in_order(make_app: MakeApp) -> None:
    app = make_app()

    @app.periodic(every=1.0, catch_up="all")
    def beat() -> None:
        pass

    clock = Clock(START + 0.5)
    scheduler = Scheduler(app, store_of(app), LEASE, clock)
    await scheduler.step()
    clock.now = START + 4.5

    await scheduler.step()

    assert ticks_of(await sent(app)) == [int((START + n) * 1000) for n in (1, 2, 3, 4)]


class DiesBeforeRecording(RecordStore):
    """A store whose holder dies between sending a tick and recording it: the
    put_if of a schedule's last tick never arrives."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self.store.put(key, value, ttl)

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        return await self.store.get_all(prefix)

    async def get(self, key: str) -> bytes | None:
        return await self.store.get(key)

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        if key.startswith("schedule:last:") and current is not None:
            raise ConnectionError("killed")
        return await self.store.put_if(key, value, ttl, current=current)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.store.delete(keys)

    async def close(self) -> None:
        pass


async def test_a_tick_sent_again_by_the_next_leader_runs_once(make_app: MakeApp) -> None:
    app = make_app()
    runs: list[int] = []

    @app.periodic(every=1.0, catch_up="all")
    def beat() -> None:
        runs.append(int(hurtle.current_task().headers[TICK_HEADER]))

    store = store_of(app)
    clock = Clock(START + 0.5)
    dying = Scheduler(app, DiesBeforeRecording(store), 0.2, clock)
    await dying.step()  # records the new schedule, takes the lease
    clock.now = START + 2.5
    await dying.step()  # sends ticks 1 and 2, then dies before recording them

    successor = Scheduler(app, store, LEASE, clock)
    while not successor.lease.held:  # until the dead leader's lease runs out
        await successor.step()
        await asyncio.sleep(0.05)

    assert ticks_of(await sent(app)) == [int((START + n) * 1000) for n in (1, 2)] * 2
    await drain_async(app, timeout=10.0)
    assert sorted(runs) == [int((START + n) * 1000) for n in (1, 2)]
    assert read_last(await store.get(last_key(next(iter(app.schedules))))) == (int((START + 2) * 1000), True)


async def test_a_redelivered_copy_that_claimed_its_tick_runs_again(every_second: hurtle.App) -> None:
    store = MemoryRecords()
    clock = Clock(START + 0.5)
    scheduler = Scheduler(every_second, store_of(every_second), LEASE, clock)
    await scheduler.step()
    clock.now = START + 1.0
    await scheduler.step()
    (envelope,) = await sent(every_second)
    other_copy = envelope.__copy__()
    other_copy.headers = {**envelope.headers, COPY_HEADER: "another"}

    assert await first_copy(store, envelope)
    assert await first_copy(store, envelope)  # its worker died mid-run: delivered again, runs again
    assert not await first_copy(store, other_copy)


async def test_the_lease_is_taken_when_free_renewed_by_its_holder_and_refused_to_others() -> None:
    store = MemoryRecords()
    first, second = Lease(store, KEY, LEASE), Lease(store, KEY, LEASE)

    assert await first.acquire()
    assert not await second.acquire()
    assert await first.acquire()  # a renewal
    assert leader_name(await store.get(KEY)) == first.holder.decode().rsplit(":", 1)[0]


async def test_a_lease_not_renewed_passes_to_another_worker() -> None:
    store = MemoryRecords()
    dead, alive = Lease(store, KEY, 0.2), Lease(store, KEY, LEASE)
    await dead.acquire()

    while not await alive.acquire():
        await asyncio.sleep(0.05)

    assert not await dead.acquire()


async def test_a_lease_given_back_passes_on_without_waiting_out_its_time() -> None:
    store = MemoryRecords()
    first, second = Lease(store, KEY, LEASE), Lease(store, KEY, LEASE)
    await first.acquire()

    await first.release()

    async def taken() -> bool:
        return await second.acquire()

    await eventually(taken, "the lease given back to be free (its 30 s not waited out)")
    assert not await first.acquire()


async def test_apps_with_other_schedules_on_one_broker_elect_a_leader_each(make_app: MakeApp) -> None:
    first = make_app()
    second = hurtle.App(str(first.broker_url))  # another app on the same broker

    @first.periodic(every=1.0)
    def sweep() -> None:
        pass

    @second.periodic(every=1.0, name="other.beat")
    def beat() -> None:
        pass

    clock = Clock(START + 0.5)
    leaders = [Scheduler(app, store_of(app), LEASE, clock) for app in (first, second)]
    for leader in leaders:
        await leader.step()

    assert [leader.lease.held for leader in leaders] == [True, True]
    second.close()


async def test_a_leader_whose_lease_another_took_sends_nothing(every_second: hurtle.App) -> None:
    clock = Clock(START + 0.5)
    store = store_of(every_second)
    stalled = Scheduler(every_second, store, 0.2, clock)
    await stalled.step()
    successor = Scheduler(every_second, store, LEASE, clock)
    while not successor.lease.held:  # the stalled leader's lease runs out
        await successor.step()
        await asyncio.sleep(0.05)

    clock.now = START + 1.0
    await stalled.step()  # it wakes up, a tick due

    assert not stalled.lease.held
    assert await sent(every_second) == []  # the successor sends it at its own next pass
    await successor.step()
    assert len(await sent(every_second)) == 1


async def test_a_scheduler_stopped_gives_its_lease_back(every_second: hurtle.App) -> None:
    store = store_of(every_second)
    running = asyncio.create_task(Scheduler(every_second, store, LEASE).run())
    key = leader_key(every_second.schedules)

    async def led() -> bool:
        return await store.get(key) is not None

    await eventually(led, "the scheduler to take the lease")
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)

    async def given_back() -> bool:
        return await store.get(key) is None

    await eventually(given_back, "the lease to be given back (not left to its 30 s)")
