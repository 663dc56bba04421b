"""``-t auto``: how many threads a process's pool should have, found by hill climbing.

The right size depends on the tasks, which the worker cannot know in advance:
tasks that wait on I/O want many threads (each waits in parallel, and a larger
pool also fetches in larger batches: at 8 threads a Redis worker made a fetch
per 3.7 tasks, docs/benchmarks.md), while CPU-bound ones want few (they share
one GIL: more threads only add switching). So the size is measured, in the
spirit of .NET's thread pool: every interval the tuner is told how many tasks
finished and how much CPU the process used, and it moves the size toward what
did better.

- **Room** decides the direction. A process has room while its GIL is not
  full: its user CPU below ``CPU_FULL`` of a core and its loop's wake-ups late
  by less than ``LAG_FULL``. With room, more threads cost little (they wait on
  I/O off the GIL) and may add throughput; without it, they only add switching.
- **First climb**: a busy pool with room grows fourfold (8, 32, 64) every
  ``CLIMB_INTERVAL`` while the room lasts, unjudged: in a burst's first tenths
  of a second one interval's rate says more about the start than about the
  size (rates a third apart at one size), while the room is plain to see.
- **Probes**, after ``hold`` intervals at one size: with room, a step up
  (below the cap) or down (alternately); without, a step down. Each is judged
  on the mean of ``window`` intervals against the mean of the ``window``
  before it, and the judgment leans where room points: with room, a step up is
  kept unless it clearly did worse (fewer tasks a second, or more CPU per task
  for no more of them) and a step down only if it clearly did better; without
  room, a step down is kept if it did as well. So an I/O pool settles at the
  largest size that does not clearly hurt, a CPU-bound one at the smallest
  that does not clearly hurt, and noise moves neither.
- A probe undone doubles the wait before the next (up to ``MAX_BACKOFF``
  times ``hold``): a pool already at its best size is disturbed less and less.
- **Warm up**: the interval right after a move is not judged; it shows the
  threads starting (or leaving) more than the new size.

.NET's tuner moves the count along a wave and reads the throughput's response
at the wave's frequency, which cancels noise; this one averages whole
intervals and asks for a margin (``gain``), which is enough for the few steps a
pool of at most ``cap`` threads has (8, 16, 32, 64: three doublings), and it
never moves when the queues ran dry, when the number of threads is not what
holds the tasks back. It is pure arithmetic over what it is told, so its
decisions are tested with a made-up feed (tests/unit/test_thread_tuner.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

resource: ModuleType | None
try:
    import resource
except ImportError:  # not POSIX
    resource = None

#: ``-t auto``'s pool: threads to start with (the fixed default before it), and at most.
AUTO_START = 8
AUTO_MAX = 64
#: Seconds between two looks; a probe is judged on ``WINDOW`` of them.
INTERVAL = 0.25
#: The same during a pool's first climb: a burst of short tasks can drain in a second or two,
#: and at ``INTERVAL`` its first half second went to growing (8, 32, 64) at a fraction of the
#: rate the grown pool reached. The climb goes on room alone, which tens of milliseconds
#: show; settled, the pool is judged on the longer interval, where differences of a tenth
#: must stand out of the noise.
CLIMB_INTERVAL = 0.05
#: An interval with fewer finished tasks is extended (up to ``MAX_WINDOW`` intervals).
MIN_COMPLETED = 20
MAX_WINDOW = 20
#: The share of fetches that came back short (the queues ran dry) past which an
#: interval says nothing about the pool: it was waiting for messages, not threads...
SHORT_ENOUGH = 0.5
#: ...unless the threads were busy anyway: the mean share of the pool running a task, at
#: or above which short fetches did not leave it waiting. A RabbitMQ fetch hands out what
#: its consumer has buffered, often fewer than asked with the queue full behind it: 80%
#: to 97% of its fetches came back short, and the tuner, taking the queue for dry, never
#: judged a size there.
BUSY_ENOUGH = 0.75
#: User CPU seconds per second (of the whole process) past which it has no room for more
#: threads: the GIL lets a process run Python on about one core. User time, not user and
#: system: threads waiting on I/O spend system time in their system calls and in handing
#: the GIL over, off the GIL. A Redis round trip per task cost a process 0.9 CPU seconds a
#: second, half of it system time, and counted whole it kept the pool from growing where
#: 64 threads did best.
CPU_FULL = 0.90
#: Seconds the loop's wake-ups may come late, on average, before the GIL counts as full.
#: Threads that compute hold the GIL for a switch interval (5 ms) each in turn: with 8
#: busy-looping threads a 10 ms sleep woke 41 ms late (median), with 8 threads waiting
#: on I/O 0.13 ms, as with none; 32 to 64 threads that each make a Redis round trip, on a
#: busy 2-core machine, 1 to 7.5 ms. A process whose tasks compute has no room for more
#: threads even when the machine's load keeps its CPU time below ``CPU_FULL``.
LAG_FULL = 0.010
#: Looks at the loop's lateness per interval.
LOOKS_PER_INTERVAL = 10
#: Intervals whose mean judges a probe, and the mean it is judged against: one interval's
#: rate at 32 threads ran from 3,650 to 6,174 tasks/s on a shared 2-core machine (io tasks,
#: docs/benchmarks.md), so a single interval said more about the machine than the size.
WINDOW = 3
#: A probe undone doubles the wait before the next, up to this many times ``hold``.
MAX_BACKOFF = 8
#: Intervals a worker process adds at random to each wait before a probe (``spread``).
PROBE_SPREAD = 4


@dataclass(frozen=True)
class Sample:
    """What one interval measured."""

    seconds: float  # the interval's wall time
    completed: int  # sync tasks that finished in it
    cpu_seconds: float  # the process's CPU time in it, every thread, user and system
    short_fetches: float  # the share of its fetches that came back with fewer messages than asked, 0 to 1
    loop_lag: float = 0.0  # seconds the loop's wake-ups came late, on average: how contended the GIL was
    user_seconds: float | None = None  # the user part of ``cpu_seconds`` (None: all of it)
    occupancy: float = 0.0  # the mean share of the pool's threads running a task, 0 to 1


@dataclass(frozen=True)
class Measure:
    rate: float  # tasks per second
    cpu: float  # the process's CPU seconds per task
    user: float  # the process's user CPU seconds per second: how full its GIL is
    lag: float  # the loop's mean lateness, in seconds


def mean(measures: list[Measure]) -> Measure:
    count = len(measures)
    return Measure(
        sum(m.rate for m in measures) / count, sum(m.cpu for m in measures) / count,
        sum(m.user for m in measures) / count, sum(m.lag for m in measures) / count,
    )


class ThreadTuner:
    """Decides the pool's size, one ``observe`` per interval."""

    def __init__(
        self, start: int = AUTO_START, cap: int = AUTO_MAX, floor: int = 2, *, gain: float = 0.10,
        hold: int = 8, cpu_full: float = CPU_FULL, short_enough: float = SHORT_ENOUGH,
        lag_full: float = LAG_FULL, warmup: int = 1, busy_enough: float = BUSY_ENOUGH,
        window: int = WINDOW, spread: int = 0,
    ) -> None:
        if not 1 <= floor <= cap:
            raise ValueError(f"need 1 <= floor <= cap, not floor {floor}, cap {cap}")
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window}")
        self.cap = cap
        self.floor = floor
        self.threads = max(floor, min(cap, start))
        self._gain = gain
        self._hold = hold
        #: Up to this many intervals added at random to each wait before a probe: the
        #: processes of one worker start together, and probing all at once each would
        #: judge its size by what the others' moves did to the machine.
        self._spread = spread
        self._cpu_full = cpu_full
        self._short_enough = short_enough
        self._busy_enough = busy_enough
        self._lag_full = lag_full
        self._window = window
        #: Intervals not judged after each move: the first one shows the move itself (32 new
        #: threads starting, their first wake-ups) more than the new size: a step from 32 to
        #: 64 threads made that interval's rate fall by a third, and the step was undone.
        self._warmup = warmup
        self._warming = 0
        #: The last ``window`` intervals at the current size, while no move is judged.
        self._at_size: list[Measure] = []
        #: The size before the move being judged, and the mean measured there; None: no move is.
        self._before: tuple[int, Measure] | None = None
        #: The intervals measured since the move (after its warm-up).
        self._after: list[Measure] = []
        #: Intervals left before the next probe, and the multiple of ``hold`` the next wait is.
        self._quiet = 0
        self._backoff = 1
        self._probe_down_next = False  # with room below the cap, probes alternate: up first
        #: The first climb: fourfold steps on room alone, every ``CLIMB_INTERVAL``; over at
        #: the first size it settles on.
        self._climbing = True
        #: Whether the last interval was one to judge (tasks finished, the queues not dry): an
        #: idle worker looks at the longer interval, not 200 times a second.
        self._busy = True

    @property
    def interval(self) -> float:
        """Seconds the next sample should span: short until the first climb is over."""
        return CLIMB_INTERVAL if self._climbing and self._busy else INTERVAL

    def observe(self, sample: Sample) -> int:
        """The size for the next interval, given what the last one measured."""
        dry = sample.short_fetches > self._short_enough and sample.occupancy < self._busy_enough
        self._busy = sample.seconds > 0 and sample.completed > 0 and not dry
        if not self._busy:
            # Nothing finished, or the queues ran dry: the pool's size did not limit
            # throughput, so a comparison would measure the queue, not the pool. Judge
            # nothing, and start afresh when work comes back: it may be other work.
            self._before, self._warming, self._after, self._at_size = None, 0, [], []
            self._backoff = 1
            return self.threads
        user = sample.cpu_seconds if sample.user_seconds is None else sample.user_seconds
        now = Measure(sample.completed / sample.seconds, sample.cpu_seconds / sample.completed,
                      user / sample.seconds, sample.loop_lag)
        if self._warming:
            self._warming -= 1
            return self.threads
        if self._before is not None:
            self._after.append(now)
            if self._climbing:
                return self._climb_on(now)
            if len(self._after) < self._window:
                return self.threads
            return self._judge(mean(self._after))
        self._at_size = [*self._at_size, now][-self._window:]
        if self._quiet > 0:
            self._quiet -= 1
            return self.threads
        if self._climbing and self._has_room(now) and self.threads < self.cap:
            self._move(now, min(self.cap, self.threads * 4))
            return self.threads
        self._climbing = False
        if len(self._at_size) < self._window:  # a probe is judged against a full window
            return self.threads
        return self._probe(mean(self._at_size))

    def _has_room(self, measure: Measure) -> bool:
        return measure.user < self._cpu_full and measure.lag < self._lag_full

    def _better(self, now: Measure, before: Measure) -> bool:
        """Clearly more tasks a second; or as many, for clearly less CPU each."""
        if now.rate > before.rate * (1 + self._gain):
            return True
        return now.rate >= before.rate * (1 - self._gain / 2) and now.cpu < before.cpu * (1 - self._gain)

    def _worse(self, now: Measure, before: Measure) -> bool:
        """Clearly fewer tasks a second; or clearly more CPU each, for no more of them:
        what threads that only add contention show."""
        if now.rate < before.rate * (1 - self._gain):
            return True
        return now.cpu > before.cpu * (1 + self._gain) and now.rate <= before.rate * (1 + self._gain)

    def _as_good(self, now: Measure, before: Measure) -> bool:
        """At least as many tasks a second; or nearly as many, for less CPU each."""
        if now.rate >= before.rate:
            return True
        return now.rate >= before.rate * (1 - self._gain / 2) and now.cpu < before.cpu * (1 - self._gain)

    def _climb_on(self, now: Measure) -> int:
        """The first climb: on while the room lasts, to the cap; then settled where it is."""
        if self._has_room(now) and self.threads < self.cap:
            self._move(now, min(self.cap, self.threads * 4))
        else:
            self._settle(kept=True)
        return self.threads

    def _probe(self, here: Measure) -> int:
        room = self._has_room(here)
        up = room and self.threads < self.cap
        down = self.threads > self.floor and (not room or self._probe_down_next or not up)
        if down:
            self._move(here, max(self.floor, self.threads // 2))
        elif up:
            self._move(here, min(self.cap, self.threads * 2))
        else:  # at the floor with no room to grow: nothing to try
            self._settle(kept=True)
        if room:
            self._probe_down_next = not self._probe_down_next
        return self.threads

    def _judge(self, now: Measure) -> int:
        assert self._before is not None
        size, before = self._before
        if self.threads > size:  # a step up is only ever taken with room
            kept = not self._worse(now, before)
        elif self._has_room(before):
            kept = self._better(now, before)
        else:
            kept = self._as_good(now, before)
        if not kept:
            self.threads = size
        self._settle(kept)
        return self.threads

    def _move(self, now: Measure, size: int) -> None:
        self._before = (self.threads, now)
        self._after = []
        self.threads = size
        self._warming = self._warmup

    def _settle(self, kept: bool) -> None:
        """Stay at the current size: measured afresh, until the next probe."""
        if self._before is not None and kept:
            self._at_size = self._after[-self._window:]
        else:
            self._at_size = []
        self._climbing = False
        self._before, self._after = None, []
        self._backoff = 1 if kept else min(MAX_BACKOFF, self._backoff * 2)
        self._quiet = self._hold * self._backoff + random.randint(0, self._spread)


async def tune(
    tuner: ThreadTuner, counts: Callable[[], tuple[int, int, int]], resize: Callable[[int], None],
    occupancy: Callable[[], float],
) -> None:
    """Feed ``tuner`` one ``Sample`` per interval and ``resize`` the pool when it says so.

    ``counts`` reads the consumer's running totals: sync tasks finished, fetches
    made, fetches that came back short. Nothing is measured per task. The
    interval is the tuner's own (``ThreadTuner.interval``).
    ``occupancy`` reads the share of the pool running a task now; it is read at
    each look at the loop and averaged.
    An interval in which fewer than ``MIN_COMPLETED`` tasks finished (long
    tasks) is extended, up to ``MAX_WINDOW`` intervals, so a rate is not judged
    on a handful of tasks."""
    current = tuner.threads
    while True:
        look = tuner.interval / LOOKS_PER_INTERVAL
        wall, (user, system) = time.monotonic(), _cpu_times()
        done, fetches, short = counts()
        late, looks, occupied = 0.0, 0, 0.0
        for _ in range(MAX_WINDOW):
            for _ in range(LOOKS_PER_INTERVAL):
                asked = time.monotonic()
                await asyncio.sleep(look)
                late += time.monotonic() - asked - look
                looks += 1
                occupied += occupancy()
            now_done, now_fetches, now_short = counts()
            if now_done - done >= MIN_COMPLETED:
                break
        fetched = now_fetches - fetches
        now_user, now_system = _cpu_times()
        sample = Sample(
            time.monotonic() - wall, now_done - done, now_user - user + now_system - system,
            (now_short - short) / fetched if fetched else 0.0, late / looks, now_user - user,
            occupied / looks,
        )
        size = tuner.observe(sample)
        if size != current:
            resize(size)
            current = size


def _cpu_times() -> tuple[float, float]:
    """The process's (user, system) CPU seconds, every thread; to the microsecond, where
    ``os.times`` counts clock ticks (10 ms: a fifth of a 50 ms interval). Without
    ``getrusage`` (not POSIX), all of it counts as user time."""
    if resource is None:
        return time.process_time(), 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime
