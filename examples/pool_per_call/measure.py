"""Time the same tasks through ``tasks.py`` (a pool per call) and ``tasks_fixed.py``
(a client per process), and count the connections Redis accepted for each.

For each version: send N tasks, then run a real ``hurtle worker MODULE --burst``
(it exits once the queue is empty) and time it. A burst worker on an empty queue
is timed first, so its start-up can be taken off. The connections are Redis's
``total_connections_received`` before and after the burst: the whole server's,
so other clients of the same Redis add to them.

    python measure.py [--tasks 5000] [-p 2] [--broker redis://127.0.0.1:6379/15]

Runs from any folder. Redis is at ``$REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). The broker is a SQLite file in a temp dir unless
``--broker`` names another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
VERSIONS = ("tasks", "tasks_fixed")
PAGES = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per version")
    parser.add_argument("-p", "--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--broker", help="broker URL (default: SQLite in a temp dir)")
    options = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    counters = redis.Redis.from_url(redis_url)
    with tempfile.TemporaryDirectory() as folder:
        broker = options.broker or f"sqlite:///{folder}/broker.db"
        os.environ["HURTLE_BROKER"] = broker
        sys.path.insert(0, str(HERE))
        print(f"{options.tasks} tasks per version, {options.processes} processes, broker {broker}, "
              f"Redis {redis_url}")
        for module in VERSIONS:
            start_up = burst(module, options.processes)
            send(module, options.tasks)
            before = connections_received(counters)
            total = burst(module, options.processes)
            opened = connections_received(counters) - before
            work = total - start_up
            if work <= 0:  # the tasks took less than start-up's own variation
                print(f"{module + '.py':15} {total:7.2f} s in all: too few tasks to tell from start-up")
                continue
            print(f"{module + '.py':15} {total:7.2f} s in all, {start_up:5.2f} s of it start-up: "
                  f"{work:6.2f} s for the tasks, {options.tasks / work:8.1f} tasks/s, "
                  f"{opened} connections opened")
    counters.close()


def send(module: str, count: int) -> None:
    tasks = __import__(module)
    tasks.count_visit.send_many([(f"page-{n % PAGES}",) for n in range(count)])
    tasks.app.close()


def connections_received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def burst(module: str, processes: int) -> float:
    """Seconds a burst worker of ``module`` takes, from its start to its exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hurtle", "worker", module, "--burst", "-p", str(processes),
         "--log-level", "warning"],
        cwd=HERE, check=True,
    )
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
