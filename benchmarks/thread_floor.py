"""What a ``def`` task's round trip costs in threads alone, with no task queue at all.

N threads of one process each make ``--calls`` ``INCR`` with sync redis-py (one
connection pool, as the io workload's tasks share one client per process), and
the process's own CPU (``getrusage``: user, system, voluntary context switches)
is divided by the calls made. One thread is the client's own cost; more threads
add what waiting for the GIL after each system call costs, which no task queue
that runs ``def`` tasks in threads can go below. The key is deleted afterwards.

    python -m benchmarks.thread_floor redis://127.0.0.1:6379/0 [--threads 1,4,16,32,64] [-n 20000]
"""

from __future__ import annotations

import argparse
import resource
import secrets
import threading
import time

import redis


def measure(url: str, threads: int, calls: int, key: str) -> str:
    """One run: ``calls`` INCRs shared among ``threads`` threads; a line of figures."""
    pool = redis.ConnectionPool.from_url(url, max_connections=threads + 4)
    each = max(1, calls // threads)

    def work() -> None:
        client = redis.Redis(connection_pool=pool)
        for _ in range(each):
            client.incr(key)

    runners = [threading.Thread(target=work) for _ in range(threads)]
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    pool.disconnect()
    made = each * threads
    user = 1e6 * (after.ru_utime - before.ru_utime) / made
    system = 1e6 * (after.ru_stime - before.ru_stime) / made
    switches = (after.ru_nvcsw - before.ru_nvcsw) / made
    return (
        f"{threads:>3} thread(s): {made / elapsed:>9,.0f} calls/s · CPU {user + system:.0f} us/call"
        f" (user {user:.0f}, system {system:.0f}) · {switches:.1f} voluntary switches/call"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="a Redis URL")
    parser.add_argument("--threads", default="1,4,16,32,64", help="thread counts, comma-separated")
    parser.add_argument("-n", "--calls", type=int, default=20_000, help="INCRs per run")
    args = parser.parse_args()
    key = f"hurtle-thread-floor-{secrets.token_hex(6)}"
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            print(measure(args.url, threads, args.calls, key), flush=True)
    finally:
        client = redis.Redis.from_url(args.url)
        client.delete(key)
        client.close()


if __name__ == "__main__":
    main()
