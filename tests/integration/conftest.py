"""Run real ``hurtle worker`` processes against a SQLite broker in a temp dir."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hurtle.brokers import DeadLetter, QueueStats, from_url
from tests.amqp_server import unique_amqp_url
from tests.redis_server import unique_redis_url

APPS = Path(__file__).parent / "apps"
WAIT_LIMIT = 60.0  # seconds: a bound on every wait, never a sleep that must be long enough


def wait_until(condition: Callable[[], Any], what: str, limit: float = WAIT_LIMIT) -> Any:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")
        time.sleep(0.02)


def terminate(proc: subprocess.Popen[Any], grace: float, *, signals: int = 1) -> None:
    """SIGTERM ``proc`` (``signals`` times) if it still runs; SIGKILL it past ``grace`` seconds."""
    if proc.poll() is not None:
        return
    for _ in range(signals):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: ``/metrics`` samples: {(name, frozenset of (label, value)): value}.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[str, Samples]:
    """``/metrics`` on a loopback port as Prometheus reads it: its text and its samples,
    parsed by prometheus-client's own parser; nothing yet while the worker starts.
    (A tenth of a second between scrapes: a poll, not a wait that must be long enough.)"""
    from prometheus_client.parser import text_string_to_metric_families

    time.sleep(0.1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return "", {}
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return text, samples


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def stats(url: str, queue: str = "default") -> QueueStats:
    """The broker's counts for one queue, read through a broker of its own.
    (On RabbitMQ ``in_flight`` only counts the asking client's leases.)"""

    async def collect() -> QueueStats:
        broker = from_url(url)
        try:
            (row,) = await broker.stats([queue])
            return row
        finally:
            await broker.close()

    return asyncio.run(collect())


def dead_letters(url: str) -> list[DeadLetter]:
    async def collect() -> list[DeadLetter]:
        broker = from_url(url)
        try:
            return await broker.dead_letters()
        finally:
            await broker.close()

    return asyncio.run(collect())


def run_counts(marks: Path) -> Counter[str]:
    """How many times each task key ran, from the workers' ``runs`` file."""
    return Counter(line.split()[0] for line in lines(marks / "runs"))


def hurtle_cli(
    *args: str, input: str | None = None, cwd: Path | None = None, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a ``hurtle`` command as a user types it, output captured; ``env`` adds
    variables to this process's (None: removes one)."""
    environ = {**os.environ, "COLUMNS": "250"}  # rich wraps table cells to the terminal's width
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-m", "hurtle", *args],
        capture_output=True, text=True, timeout=60, input=input, check=False, cwd=cwd, env=environ,
    )


def queue_table(stdout: str) -> dict[str, dict[str, str]]:
    """``hurtle status``'s queue table as {queue: {column: cell}}, by the column
    names in its header, so a test reads the figure it means by name."""
    lines = iter(stdout.splitlines())
    header = next(line for line in lines if line.startswith("┃") and "queue" in line)
    columns = [cell.strip() for cell in header.split("┃")[1:-1]]
    table = itertools.takewhile(lambda line: not line.startswith("└"), lines)  # the workers' table is next
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table if line.startswith("│")]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


class Workers:
    """Start ``hurtle worker`` subprocesses and clean up after them."""

    def __init__(self, marks: Path, env: dict[str, str]) -> None:
        self.marks = marks
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, app: str | None = "workerapp") -> subprocess.Popen[str]:
        """``hurtle worker APP ARGS...``; ``app=None`` passes ARGS alone."""
        log = open(self.marks / f"worker-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hurtle", "worker", *([app] if app else []), *args],
            cwd=APPS,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def log(self, index: int = 0) -> str:
        return (self.marks / f"worker-{index}.log").read_text()

    def children(self, proc: subprocess.Popen[str]) -> list[int]:
        """The worker processes the supervisor forked (Linux /proc)."""
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop_all(self) -> None:
        for proc in self.procs:
            terminate(proc, 10, signals=2)  # a second SIGTERM: stop without waiting for tasks


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture
def worker_env(tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """HURTLE_BROKER and friends, set for this process (the producer) and the workers."""
    env = {
        "HURTLE_BROKER": f"sqlite:///{tmp_path}/broker.db",
        "WORKERAPP_DIR": str(marks),
        "PYTHONPATH": os.pathsep.join([str(APPS), *sys.path]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(APPS))
    return {**os.environ, **env}


@pytest.fixture
def workers(marks: Path, worker_env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(marks, worker_env)
    yield started
    started.stop_all()


@pytest.fixture
def load_workerapp(
    worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    """Import the test app fresh, with settings (``visibility=``, ``max_deliveries=``)
    that this process and the workers started after it both read."""
    loaded: list[Any] = []

    def load(**settings: object) -> Any:
        for key, value in settings.items():
            name = f"WORKERAPP_{key.upper()}"
            monkeypatch.setenv(name, str(value))
            worker_env[name] = str(value)
        sys.modules.pop("workerapp", None)
        import workerapp

        loaded.append(workerapp)
        return workerapp

    yield load
    for module in loaded:
        module.app.close()
    sys.modules.pop("workerapp", None)


@pytest.fixture
def workerapp(load_workerapp: Callable[..., Any]) -> Any:
    """The test app with default settings."""
    return load_workerapp()


# Each: the broker URL and the result store URL (None: the broker's own) for a test.
STORES: dict[str, Callable[[Path], tuple[str, str | None]]] = {
    "sqlite": lambda tmp: (f"sqlite:///{tmp}/broker.db", None),
    "redis": lambda tmp: (unique_redis_url(), None),
    "amqp+redis": lambda tmp: (unique_amqp_url(), unique_redis_url()),
}


@pytest.fixture(params=sorted(STORES))
def app_on_each_store(
    request: pytest.FixtureRequest, tmp_path: Path, worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, load_workerapp: Callable[..., Any],
) -> Any:
    """The test app on each store (SQLite, Redis, RabbitMQ keeping its results and
    registry in Redis), for this process and the workers started after."""
    broker, results = STORES[request.param](tmp_path)
    for name, value in (("HURTLE_BROKER", broker), ("HURTLE_RESULTS", results)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
            worker_env.pop(name, None)
        else:
            monkeypatch.setenv(name, value)
            worker_env[name] = value
    return load_workerapp()
