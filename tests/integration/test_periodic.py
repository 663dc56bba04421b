"""Periodic tasks under real ``hurtle worker`` processes: three workers (each its
own supervisor) run a 1-second schedule while the one that leads is killed
with SIGKILL, on SQLite, on Redis, and on RabbitMQ with its records in Redis.

Afterwards every tick of the window ran from exactly one enqueued copy: no tick
twice, and (``catch_up="all"``) none missing, though the leader died holding
the lease and perhaps between sending a tick and recording it. With
``catch_up="skip"`` the takeover may skip ticks, no more than ``SKIP_BOUND``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from hurtle.record_source import open_records
from hurtle.schedule.lease import leader_key, leader_name
from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import APPS, Workers, hurtle_cli, lines, wait_until
from tests.redis_server import unique_redis_url

pytestmark = pytest.mark.slow

LEASE = 3.0  # seconds: the scheduler's lease; longer than the interval, so a takeover misses ticks
VISIBILITY = 2.0  # seconds: a tick the killed worker was running is delivered again soon
EVERY_MS = 1000  # the schedule's interval
AFTER_TAKEOVER = 3  # ticks the new leader must have sent before the window closes
# The leader renews at each tick and every third of a lease: it had sent every
# tick up to its last renewal R. Its lease ends at R + LEASE, and a follower,
# which asks every third of a lease, holds it by R + 4/3 LEASE, then sends the
# latest tick alone: it skips the ticks of (R, R + 4/3 LEASE) but that one. One
# tick more for a follower slowed down by a loaded machine.
SKIP_BOUND = math.ceil(4 / 3 * LEASE * 1000 / EVERY_MS) + 1


@pytest.fixture
def use_urls(worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point this process and the workers started after at a broker and result store."""

    def use(broker: str, results: str | None = None, catch_up: str = "all") -> None:
        settings = {
            "HURTLE_BROKER": broker, "HURTLE_RESULTS": results, "WORKERAPP_VISIBILITY": str(VISIBILITY),
            "PERIODICAPP_CATCH_UP": catch_up,
        }
        for key, value in settings.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
                worker_env.pop(key, None)
            else:
                monkeypatch.setenv(key, value)
                worker_env[key] = value

    return use


def leader() -> str | None:
    """``host:pid`` of the worker process that holds the lease now."""

    async def read() -> str | None:
        store = open_records(os.environ["HURTLE_BROKER"], os.environ.get("HURTLE_RESULTS"))
        assert store is not None
        try:
            return leader_name(await store.get(leader_key(["periodicapp.beat"])))
        finally:
            await store.close()

    return asyncio.run(read())


def runs(marks: Path) -> dict[int, list[tuple[str, str, int]]]:
    """Each tick's runs as (task id, copy token, deliveries), from the ``ticks`` file."""
    found: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for line in lines(marks / "ticks"):
        tick, task_id, copy, deliveries = line.split()
        found[int(tick)].append((task_id, copy, int(deliveries)))
    return found


def kill_the_leader(workers: Workers, marks: Path) -> tuple[range, dict[int, list[tuple[str, str, int]]]]:
    """Start three workers, SIGKILL the leader's, and watch a new leader send
    ticks; return the window of ticks from the first that ran to the last seen,
    and the runs."""
    # Given three workers, each its own supervisor with one process, under a 1-second schedule
    for _ in range(3):
        workers.start("-p", "1", "--schedule-lease", str(LEASE), app="periodicapp")
    wait_until(lambda: len(runs(marks)) >= 2, "two ticks to run")
    first_leader = wait_until(leader, "a leader")
    pid = int(first_leader.rsplit(":", 1)[1])
    (holder,) = [proc for proc in workers.procs if pid in workers.children(proc)]

    # When the leader's machine dies: its supervisor and its process, by SIGKILL
    os.kill(holder.pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    holder.wait(10)
    killed_after = max(runs(marks))
    new_leader = wait_until(lambda: (name := leader()) not in (None, first_leader) and name, "a new leader")
    last = wait_until(
        lambda: max(runs(marks)) >= killed_after + AFTER_TAKEOVER * EVERY_MS and max(runs(marks)),
        "the new leader to send ticks",
    )

    listing = hurtle_cli("schedule", "list", "-A", "periodicapp", "--json", cwd=APPS)
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["leader"] in (new_leader, leader())
    return range(min(runs(marks)), last + 1, EVERY_MS), runs(marks)


def each_ran_from_one_copy(ran: dict[int, list[tuple[str, str, int]]], workers: Workers) -> None:
    """Every tick that ran, ran from one copy of its message, once (a run the
    kill cut short is delivered again: that copy runs again, as any task)."""
    for tick, tick_runs in ran.items():
        assert len({copy for _, copy, _ in tick_runs}) == 1, f"tick {tick} ran from two copies: {tick_runs}"
        assert [run[2] for run in tick_runs].count(1) == 1, f"tick {tick} ran {tick_runs}"
    # Only the dead leader's last send can have been sent again (and skipped by a worker).
    skipped = sum(workers.log(i).count("acknowledged without running") for i in range(len(workers.procs)))
    assert skipped <= 1, f"{skipped} tick messages were second copies: more than one worker sent ticks"


def the_leader_is_killed_and_each_tick_runs_once(workers: Workers, marks: Path) -> None:
    window, _ = kill_the_leader(workers, marks)

    def all_ran() -> bool:
        return set(window) <= set(runs(marks))

    with contextlib.suppress(AssertionError):  # the assertion below names what is missing
        wait_until(all_ran, "every tick of the window to run")
    ran = runs(marks)
    assert not set(window) - set(ran), f"ticks that never ran: {sorted(set(window) - set(ran))}"
    each_ran_from_one_copy(ran, workers)


def test_on_sqlite_the_leader_is_killed_and_each_tick_runs_once(
    use_urls: Callable[..., None], tmp_path: Path, workers: Workers, marks: Path
) -> None:
    use_urls(f"sqlite:///{tmp_path}/broker.db")
    the_leader_is_killed_and_each_tick_runs_once(workers, marks)


def test_on_redis_the_leader_is_killed_and_each_tick_runs_once(
    use_urls: Callable[..., None], workers: Workers, marks: Path
) -> None:
    use_urls(unique_redis_url())
    the_leader_is_killed_and_each_tick_runs_once(workers, marks)


def test_on_rabbitmq_with_redis_records_the_leader_is_killed_and_each_tick_runs_once(
    use_urls: Callable[..., None], workers: Workers, marks: Path
) -> None:
    use_urls(unique_amqp_url(), unique_redis_url())
    the_leader_is_killed_and_each_tick_runs_once(workers, marks)


def test_with_catch_up_skip_a_takeover_skips_no_more_ticks_than_the_lease_allows(
    use_urls: Callable[..., None], tmp_path: Path, workers: Workers, marks: Path
) -> None:
    use_urls(f"sqlite:///{tmp_path}/broker.db", catch_up="skip")
    window, ran = kill_the_leader(workers, marks)

    missing = [tick for tick in window if tick not in ran]
    longest = max((len(list(gap)) for present, gap in itertools.groupby(window, ran.__contains__)
                   if not present), default=0)

    assert longest <= SKIP_BOUND, f"{longest} ticks in a row skipped (bound {SKIP_BOUND}): {missing}"
    each_ran_from_one_copy(ran, workers)
