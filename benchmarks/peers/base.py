"""What every peer shares: the contract a peer module fills, the tasks, the run's namespace.

A peer module (``celery.py``, ``dramatiq.py``, ...) is imported twice: by
``python -m benchmarks.peers``, which sends the tasks, and by the peer's own worker command
in a subprocess, which runs them. The worker side finds its Redis URL and the
run's namespace in the environment (``URL_ENV``, ``NS_ENV``) and builds its app
at import; the sending side builds one per run with ``Run``'s values.

The task bodies live here, once, so every system runs the same code: they
count themselves in ``recorder`` (one record file per process, rewritten while
the work goes on, see ``RunRecorder``) and heavyinit's tasks pay ``setup``
once per process; io's make one round trip on the process's one client
(``hurtle.bench.io_target``). Celery, Dramatiq, Huey and RQ take them as they are
(``SYNC_TASKS``; RQ imports a job's function by its module path, this one);
taskiq calls them from functions of its own, since it renames the function it
decorates.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hurtle.bench import io_target
from hurtle.bench.chord import note_callback
from hurtle.bench.heavyinit import Setup
from hurtle.bench.runner import RunRecorder

URL_ENV = "HURTLE_PEER_URL"  # the Redis URL, in the peer's worker processes
NS_ENV = "HURTLE_PEER_NS"  # the run's namespace: queue name and key prefix
TUNE_ENV = "HURTLE_PEER_TUNE"  # a peer's own number set by the plan (arq's max_jobs)
_UNSET_NS = "hurtlebenchunset"  # the namespace of an app built where no run is going on


@dataclass(frozen=True)
class Run:
    """One peer run: where, under which namespace, what."""

    url: str  # redis://...
    ns: str  # lowercase letters and digits only (huey cleans other characters out of names)
    workload: str  # noop | latency | heavyinit | io | chord
    kind: str  # sync | async: the task model the plan chose
    n: int
    processes: int


@dataclass(frozen=True)
class Plan:
    """How a peer runs a workload: its worker command(s) and what to say about them."""

    commands: list[list[str]]  # one subprocess each; more than one when the peer has no supervisor
    summary: str  # the configuration in a few words, for the tables
    display: str  # the command as a user types it, for the header
    kind: str  # the task model used: "sync" or "async"
    env: dict[str, str] = field(default_factory=dict)


def plan_of(commands: list[list[str]], summary: str, kind: str, env: dict[str, str] | None = None) -> Plan:
    """A plan whose display is its first command (times how many there are)."""
    display = shown(commands[0]) + (f"  (x{len(commands)})" if len(commands) > 1 else "")
    return Plan(commands, summary, display, kind, env or {})


@dataclass(frozen=True)
class Peer:
    """A peer's adapter: each function does one step of ``benchmarks.peers.runner``."""

    name: str
    distribution: str  # the PyPI name, for its version
    plan: Callable[[Run], Plan]
    kind: Callable[[str, str], str]  # (workload, requested kind) -> the kind it runs
    enqueue: Callable[[Run, Sequence[Sequence[Any]]], float]  # seconds for sending alone
    enqueue_method: str  # how ``enqueue`` sends, for the output
    pending: Callable[[Run], int]  # messages queued or delivered but not acknowledged
    dead: Callable[[Run], int | None]  # dead-lettered or failed; None: the peer keeps no count
    forget: Callable[[Run], None] | None = None  # drop the run from keys outside its namespace
    #: chord: whether the callback is given the members' results (Dramatiq's group
    #: completion callback is given none); None: the peer has no chord.
    chord_results: bool | None = None


def url_from_env() -> str:
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


def ns_from_env() -> str:
    return os.environ.get(NS_ENV, _UNSET_NS)


def tune_from_env(default: int) -> int:
    return int(os.environ.get(TUNE_ENV, default))


def script(name: str) -> str:
    """A peer's console script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name) or name


def shown(command: Sequence[str]) -> str:
    """A command as a user would type it: the script's bare name, no interpreter path."""
    return " ".join([Path(command[0]).name, *command[1:]])


# -- the tasks -----------------------------------------------------------------------

recorder = RunRecorder()
setup = Setup()


def noop() -> None:
    recorder.record()


async def noop_async() -> None:
    recorder.record()


def sleep_sync(seconds: float) -> None:
    recorder.start()
    time.sleep(seconds)
    recorder.record()


async def sleep_async(seconds: float) -> None:
    recorder.start()
    await asyncio.sleep(seconds)
    recorder.record()


def work() -> None:
    recorder.start()  # the processing window includes the first setup
    setup.ensure()
    recorder.record()


async def work_async() -> None:
    recorder.start()
    setup.ensure()
    recorder.record()


def io() -> None:
    recorder.start()  # the processing window includes the first client's connect
    io_target.round_trip()  # this process's one client, made on its first task
    recorder.record()


async def io_async() -> None:
    recorder.start()
    await io_target.round_trip_async()
    recorder.record()


def chord_callback(results: list[Any] | None = None) -> None:
    """A chord's callback: notes how many results it was given (-1: none), then counts itself."""
    note_callback(-1 if results is None else len(results))
    recorder.record()


#: The sync task of each workload, for the peers whose tasks are plain functions.
SYNC_TASKS: dict[str, Callable[..., None]] = {
    "noop": noop, "latency": sleep_sync, "heavyinit": work, "io": io,
}
