"""`hurtle bench ping` measures a real worker's send-to-start latency and memory, and
verifies the work like every workload (speeds and sizes are never asserted)."""

from __future__ import annotations

import pytest

from hurtle.bench import ping
from hurtle.bench.runner import Options
from tests.redis_server import unique_redis_url

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_ping_on_redis_answers_every_task_and_reads_the_idle_workers_memory(kind: str) -> None:
    result = ping.run(Options(40, unique_redis_url(), 2, 1000, kind))

    assert result.verified, result.problems
    assert (result.ran, result.pending, result.dead, result.worker_exit) == (40, 0, 0, 0)
    extra = result.extra
    assert 0 < extra["start_p50_ms"] <= extra["start_p95_ms"] <= extra["start_p99_ms"] <= extra["start_max_ms"]
    assert 0 < extra["idle_uss_mb"] < extra["idle_rss_mb"]
    assert extra["supervisor_rss_mb"] > 0


def test_ping_on_sqlite_in_a_fresh_temp_dir_is_verified_too() -> None:
    result = ping.run(Options(20, None, 1, 1000, "async"))

    assert result.verified, result.problems
    assert result.ran == 20
