"""``python -m benchmarks.thread_floor``: every call it counts was made, and it cleans up."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import redis

from benchmarks.thread_floor import measure
from tests.redis_server import shared_redis_url


def test_each_thread_makes_its_share_of_the_calls_and_the_line_says_how_many_threads() -> None:
    url, key = shared_redis_url(), f"hurtle-test-{uuid.uuid4().hex}:floor"
    client = redis.Redis.from_url(url)
    try:
        line = measure(url, 3, 30, key)
        assert int(client.get(key) or 0) == 30
        assert re.match(r"\s*3 thread\(s\): .* calls/s · CPU \d+ us/call", line), line
    finally:
        client.delete(key)
        client.close()


def test_the_command_prints_a_line_per_thread_count_and_leaves_no_key() -> None:
    url = shared_redis_url()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.thread_floor", url, "--threads", "1,2", "-n", "20"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0].strip() for line in done.stdout.splitlines()] == ["1 thread(s)", "2 thread(s)"]
    client = redis.Redis.from_url(url)
    try:
        assert list(client.scan_iter(match="hurtle-thread-floor-*")) == []
    finally:
        client.close()
