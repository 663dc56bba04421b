"""The peer tables: "hurtle vs it" above 1 always means hurtle is ahead; no verified run, no number."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from benchmarks.peers.report import System, comparison, ratio, summaries
from hurtle.bench.result import RunResult, Timings


def verified(enqueue_s: float, processing_s: float) -> RunResult:
    return RunResult("noop", "sync", 1000, 2, "redis://x", ran=1000, pending=0, dead=0, worker_exit=0,
                     timings=Timings(enqueue_s, processing_s, 2.0, 0.5, 1.0))


def test_hurtle_vs_a_peer_divides_rates_one_way_and_times_the_other() -> None:
    assert ratio("processing_rate", 10_000.0, 2_000.0) == pytest.approx(5.0)  # hurtle / peer
    assert ratio("startup_s", 0.5, 1.0) == pytest.approx(2.0)  # peer / hurtle
    assert ratio("worker_cpu_us_per_task", 100.0, 300.0) == pytest.approx(3.0)
    assert ratio("setups", 2.0, 1000.0) is None  # a count to read, not a speed


def test_a_peer_without_a_verified_run_shows_no_number_and_no_ratio() -> None:
    lost = RunResult("noop", "sync", 1000, 2, "redis://x", ran=997, pending=3, problems=["lost tasks"])
    systems = [
        System("hurtle", "0.1.0", "-p 2", [verified(0.1, 0.1)]),
        System("rq", "3.0.0", "worker-pool", [lost]),
    ]

    tables = comparison(systems)
    out = io.StringIO()
    Console(file=out, width=200).print(*tables)

    assert "no verified run" in out.getvalue()
    rq = summaries(systems, "noop", "sync", 1000, 2)[1]
    assert (rq["verified"], rq["verified_runs"], rq["hurtle_ratio"]) == (False, 0, {})
    assert "processing_rate" not in rq


def test_each_peer_summary_carries_hurtles_ratio_to_it() -> None:
    systems = [
        System("hurtle", "0.1.0", "-p 2", [verified(0.1, 0.1), verified(0.1, 0.2)]),
        System("celery", "5.7.0", "prefork", [verified(1.0, 1.0), verified(1.0, 1.0)]),
    ]

    hurtle, celery = summaries(systems, "noop", "sync", 1000, 2)

    assert "hurtle_ratio" not in hurtle
    assert celery["hurtle_ratio"]["enqueue_rate"] == pytest.approx(10.0)
    assert celery["hurtle_ratio"]["processing_rate"] == pytest.approx(7.5)  # median 7,500/s vs 1,000/s
