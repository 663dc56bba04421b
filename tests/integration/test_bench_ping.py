"""`hurtle bench ping` measures a real worker's send-to-start latency and memory, and
verifies the work like every workload (speeds and sizes are never asserted)."""

from __future__ import annotations

import pytest

from hurtle.bench import ping
from hurtle.bench.runner import Options
from tests.integration.conftest import hurtle_cli
from tests.redis_server import unique_redis_url

# Benchmarks run one at a time, even with tests spread over processes: the peers
# share queue names on one server, and each run measures the machine.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench")]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_ping_on_redis_answers_every_task_and_reads_the_idle_workers_memory(kind: str) -> None:
    result = ping.run(Options(40, unique_redis_url(), 2, 1000, kind))

    assert result.verified, result.problems
    assert (result.ran, result.pending, result.dead, result.worker_exit) == (40, 0, 0, 0)
    extra = result.extra
    waits = [extra[f"start_{p}_ms"] for p in ("p50", "p95", "p99", "max")]
    assert waits[0] > 0 and waits == sorted(waits)
    assert 0 < extra["idle_uss_mb"] < extra["idle_rss_mb"]
    assert extra["supervisor_rss_mb"] > 0


def test_ping_on_sqlite_in_a_fresh_temp_dir_is_verified_too() -> None:
    result = ping.run(Options(20, None, 1, 1000, "async"))

    assert result.verified, result.problems
    assert result.ran == 20


def test_ping_reports_its_own_measures_not_rates_of_a_pace_it_set() -> None:
    result = ping.run(Options(10, None, 1, 1000, "sync"))

    assert result.verified, result.problems
    assert not {"enqueue_rate", "processing_rate", "wall_rate"} & result.rates().keys()
    assert "start_p50_ms" in result.rates()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--broker", "amqp://guest:guest@127.0.0.1:5672/"], "RabbitMQ keeps none"),
    ],
)
def test_ping_refuses_what_it_cannot_measure_in_one_line_and_exit_code_2(args: list[str], says: str) -> None:
    done = hurtle_cli("bench", "ping", "-n", "5", *args)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr
