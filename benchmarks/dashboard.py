"""How fast each dashboard page answers with a full Redis: ``python -m benchmarks.dashboard``.

Starts a private ``redis-server`` on a free loopback port (no persistence), fills
it with ``--ready`` messages waiting on queue ``orders`` and ``--dead`` dead
letters on queue ``inbox`` (messages for tasks no worker knows, dead-lettered by
a real ``hurtle worker --burst``), starts ``hurtle dashboard`` on it, then times
``--rounds`` HTTP GETs of every page and JSON endpoint, one after another on one
connection, and prints each one's median and slowest in milliseconds. The
server and the dashboard are stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hurtle import App

APP = "hurtle.bench.noop:app"
BATCH = 10_000  # messages per send_many
START_LIMIT = 60.0  # seconds a server or the dashboard may take to answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, what: str) -> None:
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer on port {port}") from None
            time.sleep(0.05)


@contextmanager
def process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fill(url: str, ready: int, dead: int, directory: Path) -> str:
    """Send the ready messages, and the others for a burst worker to dead-letter
    (it knows none of their tasks); return the id of one that died."""
    app = App(url)

    @app.task(name="bench.later", queue="orders")
    def later(index: int) -> None: ...

    missing = [app.task(name=f"bench.missing{k}", queue="inbox")(lambda index: None) for k in range(5)]
    try:
        started = time.perf_counter()
        for first in range(0, ready, BATCH):
            later.send_many([(i,) for i in range(first, min(ready, first + BATCH))])
        sent = time.perf_counter()
        handles = []
        for first in range(0, dead, BATCH):
            count = min(dead, first + BATCH) - first
            handles += missing[(first // BATCH) % 5].send_many([(i,) for i in range(first, first + count)])
    finally:
        app.close()
    print(f"sent {ready:,} ready messages in {sent - started:.1f} s", file=sys.stderr)
    command = [sys.executable, "-m", "hurtle", "worker", APP, "--burst", "-q", "inbox", "--broker", url]
    with process(command, directory / "burst.log") as burst:
        burst.wait()
    print(f"dead-lettered {dead:,} messages in {time.perf_counter() - sent:.1f} s", file=sys.stderr)
    return handles[0].id if handles else "0" * 32


def workers_listed(port: int) -> None:
    """Wait until both worker processes are in the registry: their start is not timed."""
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/api/workers")
        listed = json.loads(connection.getresponse().read())["workers"]
        connection.close()
        if len(listed) == 2:
            return
        time.sleep(0.2)
    raise SystemExit("the worker did not appear in the registry")


def timed(port: int, paths: list[str], rounds: int) -> dict[str, list[float]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times: dict[str, list[float]] = {}
    for path in paths:
        for index in range(rounds + 1):
            started = time.perf_counter()
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            elapsed = time.perf_counter() - started
            if answer.status != 200:
                raise SystemExit(f"GET {path}: HTTP {answer.status}")
            if index:  # the first is a warm-up
                times.setdefault(path, []).append(elapsed * 1000)
    connection.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    options = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="hurtle-dashboard-bench-") as temp:
        run(Path(temp), binary, options)


def run(directory: Path, binary: str, options: argparse.Namespace) -> None:
    redis_port, dashboard_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    redis_command = [
        binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory),
    ]
    with process(redis_command, directory / "redis.log"):
        wait_for(redis_port, "redis-server")
        task_id = fill(url, options.ready, options.dead, directory)
        hurtle = [sys.executable, "-m", "hurtle"]
        command = [*hurtle, "dashboard", "-A", APP, "--broker", url, "--port", str(dashboard_port)]
        worker = [*hurtle, "worker", APP, "-q", "idle", "-p", "2", "--broker", url]
        with process(worker, directory / "worker.log"), process(command, directory / "dashboard.log"):
            wait_for(dashboard_port, "hurtle dashboard")
            workers_listed(dashboard_port)
            paths = pages(task_id)
            times = timed(dashboard_port, paths, options.rounds)
    report(times, options)


def pages(task_id: str) -> list[str]:
    return [
        "/", "/workers", "/tasks", "/dead", "/profiles", "/schedules", f"/task/{task_id}",
        "/api/overview", "/api/workers", "/api/tasks?minutes=60", "/api/tasks?minutes=360",
        "/api/dead", "/api/dead?page=199", "/api/dead?queue=inbox&page=199", "/api/dead?q=missing3",
        "/api/dead?q=no-such-text", "/api/profiles", "/api/schedules", f"/api/task/{task_id}",
        "/api/task/0123456789abcdef0123456789abcdef",
    ]


def report(times: dict[str, list[float]], options: argparse.Namespace) -> None:
    rows = {path: {"median_ms": statistics.median(t), "max_ms": max(t)} for path, t in times.items()}
    if options.json:
        figures = {"ready": options.ready, "dead": options.dead, "rounds": options.rounds}
        print(json.dumps({**figures, "pages": rows}))
        return
    print(f"{options.ready:,} ready, {options.dead:,} dead letters; {options.rounds} GETs each")
    print(f"{'path':<45} {'median ms':>10} {'max ms':>10}")
    for path, row in rows.items():
        print(f"{path:<45} {row['median_ms']:>10.1f} {row['max_ms']:>10.1f}")


if __name__ == "__main__":
    main()
