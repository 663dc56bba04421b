"""`hurtle bench noop` verifies the work before it reports a speed (speeds are never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hurtle.bench.result import RunResult, Timings
from hurtle.bench.runner import Options, check_run, option_args
from hurtle.profiling import record
from hurtle.tally_source import open_tallies

# Benchmarks run one at a time, even with tests spread over processes: the peers
# share queue names on one server, and each run measures the machine.
pytestmark = pytest.mark.xdist_group("bench")


def bench_json(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "hurtle", "bench", *args, "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


@pytest.mark.slow
def test_bench_noop_reports_every_task_ran_once_in_json() -> None:
    code, lines, stderr = bench_json("noop", "-n", "500", "--processes", "2")

    assert code == 0, stderr
    run, summary = lines
    assert run["type"] == "run" and run["verified"] is True
    assert (run["n"], run["ran"], run["lost"], run["extra_runs"]) == (500, 500, 0, 0)
    assert (run["pending"], run["dead"], run["worker_exit"]) == (0, 0, 0)
    assert {"enqueue_rate", "processing_rate", "wall_rate"} <= run.keys()
    assert summary["type"] == "summary" and summary["verified"] is True and summary["runs"] == 1


def read_profile(broker_url: str, task: str) -> record.Profile:
    async def read() -> dict[str, int]:
        store = open_tallies(broker_url, None, None)
        try:
            return await store.read(record.key(task))
        finally:
            await store.close()

    return record.Profile.from_tally(task, asyncio.run(read()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_bench_with_profile_runs_a_worker_that_profiles_every_execution(tmp_path: Path, kind: str) -> None:
    # Given a broker the test can read after the run
    url = f"sqlite:///{tmp_path / 'bench.db'}"

    # When a tiny noop run is profiled
    code, lines, stderr = bench_json(
        "noop", "-n", "200", "-p", "1", "--kind", kind, "--broker", url, "--profile"
    )

    # Then it is verified, says profiling was on, and every execution left its mark in the broker
    assert code == 0, stderr
    run, summary = lines
    assert run["verified"] is True and summary["profile"] == {"hz": 100.0, "sample": 1.0}
    task = "hurtle.bench.noop.noop_async" if kind == "async" else "hurtle.bench.noop.noop"
    profile = read_profile(url, task)
    assert profile.executions == 200
    assert (profile.async_executions, profile.sync_executions) == ((200, 0) if kind == "async" else (0, 200))


def test_bench_profile_rate_without_profile_is_a_one_line_error() -> None:
    done = subprocess.run([sys.executable, "-m", "hurtle", "bench", "noop", "--profile-hz", "50"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "hurtle: error: --profile-hz needs --profile"


def test_a_run_that_lost_tasks_reports_the_loss_and_no_speed() -> None:
    # Given a run whose tasks counted 497 runs of 500, with the worker's timings
    result = RunResult("noop", "sync", 500, 2, "sqlite:////x.db", ran=497, pending=3, dead=0,
                       worker_exit=0, timings=Timings(0.01, 0.1, 0.5, 0.3, 1.0))

    # When it is checked
    result.problems += check_run(result)

    # Then it is not verified, says why, and carries no rate
    assert not result.verified
    assert any(p.startswith("lost tasks: 3 of 500 runs not counted") for p in result.problems)
    assert "3 message(s) still pending after the worker exited" in result.problems
    assert result.rates() == {}
    data = result.as_json()
    assert data["verified"] is False and data["lost"] == 3
    assert not {"enqueue_rate", "processing_rate", "wall_rate"} & data.keys()


def test_a_run_where_tasks_ran_twice_is_not_verified_either() -> None:
    result = RunResult("noop", "sync", 500, 2, "sqlite:////x.db", ran=501, pending=0, dead=0,
                       worker_exit=0, timings=Timings(0.01, 0.1, 0.5, 0.3, 1.0))
    result.problems += check_run(result)
    assert result.problems == ["1 task(s) ran more than once (redelivered)"]
    assert result.rates() == {}


# -- latency ---------------------------------------------------------------------


def test_latency_sleeps_the_exact_shares_for_10000_tasks() -> None:
    from hurtle.bench.latency import counts, sleeps

    assert counts(10_000) == [100, 2_900, 2_000, 5_000]
    drawn = sleeps(10_000)
    assert sorted(drawn) == sorted(sleeps(10_000))  # same multiset
    assert drawn == sleeps(10_000)  # and the same order, every run
    assert sum(drawn) == pytest.approx(26_500.0)


def test_latency_rounds_other_counts_by_largest_remainder_ties_to_the_longer_sleep() -> None:
    from hurtle.bench.latency import counts

    assert counts(50) == [1, 14, 10, 25]
    assert all(sum(counts(n)) == n for n in range(1, 500))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_bench_latency_verifies_every_sleeping_task_ran(kind: str) -> None:
    code, lines, stderr = bench_json(
        "latency", "-n", "50", "--scale", "0.01", "--processes", "1", "--kind", kind
    )

    assert code == 0, stderr
    run, summary = lines
    assert run["verified"] is True and (run["ran"], run["lost"], run["dead"]) == (50, 0, 0)
    assert run["longest_sleep_s"] == pytest.approx(0.1)  # one 10 s task in 50, scaled
    assert {"wall_over_longest", "processing_over_longest", "start_spread_s"} <= run.keys()
    assert summary["verified"] is True


# -- heavyinit -------------------------------------------------------------------


@pytest.mark.slow
def test_bench_heavyinit_pays_the_setup_at_most_once_per_process() -> None:
    code, lines, stderr = bench_json("heavyinit", "-n", "50", "--processes", "2")

    assert code == 0, stderr
    run = lines[0]
    assert run["verified"] is True and run["ran"] == 50
    assert 1 <= run["setups"] <= 2


@pytest.mark.slow
def test_bench_heavyinit_with_preload_pays_the_setup_once_in_total() -> None:
    code, lines, stderr = bench_json("heavyinit", "-n", "50", "--processes", "2", "--preload")

    assert code == 0, stderr
    assert lines[0]["verified"] is True and lines[0]["setups"] == 1


def test_a_heavyinit_run_that_paid_the_setup_too_often_is_not_verified() -> None:
    from hurtle.bench.heavyinit import check_setups

    assert check_setups(2, 2, preload=False, ran=50) == []
    assert check_setups(3, 2, preload=False, ran=50) == [
        "setup paid 3 time(s) by 2 worker process(es): more than once per process"
    ]
    assert check_setups(2, 2, preload=True, ran=50) == [
        "setup paid 2 time(s) with --preload; expected exactly 1"
    ]
    assert check_setups(0, 2, preload=False, ran=50) == ["tasks ran but no setup was counted"]


# -- io ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("target", ["redis", "http"])
def test_bench_io_verifies_one_round_trip_per_task_on_one_client_per_process(target: str, kind: str) -> None:
    # Given the I/O target: the shared Redis (skipped without one), or the bench's own HTTP server
    io_args = ["--io", target]
    if target == "redis":
        from tests.redis_server import shared_redis_url

        io_args += ["--io-redis", shared_redis_url()]

    # When a small run goes through two worker processes
    code, lines, stderr = bench_json("io", "-n", "60", "--processes", "2", "--kind", kind, *io_args)

    # Then it is verified (the target saw 60 round trips) and no process made a second client
    assert code == 0, stderr
    run, summary = lines
    assert run["verified"] is True and (run["ran"], run["lost"], run["dead"]) == (60, 0, 0)
    assert 1 <= run["clients"] <= 2
    assert summary["verified"] is True


def test_the_bench_http_server_counts_every_request_even_pipelined_or_split() -> None:
    import socket

    from hurtle.bench.io_target import CountingServer

    server = CountingServer()
    port = int(server.start().rsplit(":", 1)[1].strip("/"))
    try:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
            conn.sendall(request * 2)  # two at once
            conn.sendall(request[:20])  # one in two pieces
            conn.sendall(request[20:])
            answers = b""
            while answers.count(b"HTTP/1.1 200 OK") < 3:
                answers += conn.recv(4096)
    finally:
        server.stop()
    assert server.requests == 3


def test_an_io_run_whose_target_counted_fewer_round_trips_is_not_verified(tmp_path: Path) -> None:
    import httpx

    from hurtle.bench.io_target import open_target

    # Given a run that counted 3 task runs, but whose HTTP server answered only 2 requests
    result = RunResult("io", "sync", 3, 1, "sqlite:////x.db", ran=3, pending=0, dead=0, worker_exit=0,
                       timings=Timings(0.01, 0.1, 0.5, 0.3, 1.0))
    (tmp_path / "client-1.mark").write_text("0\n")
    with open_target("http", "") as target:
        with httpx.Client(base_url=target.url) as client:
            client.get("/")
            client.get("/")

        # When the target inspects it
        target.inspect(tmp_path, result, processes=1)

    # Then it says so and reports no speed
    assert result.problems == ["the HTTP server answered 2 round trip(s) for 3 task(s)"]
    assert not result.verified and result.rates() == {}


def test_an_io_run_whose_processes_made_more_than_one_client_each_is_not_verified() -> None:
    from hurtle.bench.io_target import check_clients, check_round_trips

    assert check_clients(2, 2, ran=50) == []
    assert check_clients(3, 2, ran=50) == [
        "3 clients made by 2 worker process(es): more than one per process"
    ]
    assert check_clients(0, 2, ran=50) == ["tasks ran but no client was counted"]
    assert check_round_trips("redis", 50, 50) == []
    assert check_round_trips("redis", 49, 50) == ["the Redis key counts 49 round trip(s) for 50 task(s)"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["noop", "--io", "http"], "--io: only the io workload makes round trips"),
        (["io", "--io", "http", "--io-redis", "redis://127.0.0.1:6379/0"], "--io-redis: the tasks make HTTP"),
        (["io", "--io-redis", "redis://:s3cret@127.0.0.1:1/0"],
         "--io redis: no Redis answers at redis://:***@127.0.0.1:1/0"),
    ],
)
def test_a_bad_io_option_is_one_line_and_exit_code_2(args: list[str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hurtle", "bench", *args, "-n", "10"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert says in line and "s3cret" not in line


@pytest.mark.slow
def test_bench_with_metrics_runs_a_worker_that_serves_them_and_still_verifies_every_run() -> None:
    # Given the worker options a run with --metrics asks for
    options = Options(100, None, 1, 1000, "sync", metrics=True)
    flag, port = option_args(options)
    assert flag == "--metrics-port" and int(port) > 0
    assert option_args(Options(100, None, 1, 1000, "sync")) == []

    # When a tiny noop run has them on, Then it is verified and says metrics were on
    code, lines, stderr = bench_json("noop", "-n", "200", "-p", "2", "--metrics")

    assert code == 0, stderr
    run, summary = lines
    assert run["verified"] is True and run["worker_exit"] == 0
    assert summary["metrics"] is True


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_bench_chord_verifies_each_member_ran_once_and_the_callback_once_with_every_result(
    kind: str,
) -> None:
    code, lines, stderr = bench_json("chord", "-n", "300", "--processes", "2", "--kind", kind)

    assert code == 0, stderr
    run, _ = lines
    assert run["verified"] is True
    assert (run["n"], run["ran"], run["pending"], run["dead"]) == (301, 301, 0, 0)


def test_a_chord_whose_callback_ran_twice_or_short_is_not_verified(tmp_path: Path) -> None:
    from hurtle.bench.chord import CALLBACK_FILE, check_callback

    assert check_callback(tmp_path, 3) == ["the chord's callback never ran"]
    (tmp_path / CALLBACK_FILE).write_text("3\n")
    assert check_callback(tmp_path, 3) == []
    (tmp_path / CALLBACK_FILE).write_text("3\n3\n")
    assert "ran 2 time(s)" in check_callback(tmp_path, 3)[0]
    (tmp_path / CALLBACK_FILE).write_text("2\n")
    assert "with [2] result(s)" in check_callback(tmp_path, 3)[0]


@pytest.mark.slow
@pytest.mark.parametrize("threads", ["4", "auto"])
def test_bench_cpu_runs_busy_loop_tasks_with_the_pool_it_is_given(threads: str) -> None:
    code, lines, stderr = bench_json("cpu", "-n", "200", "--processes", "2", "-t", threads)

    assert code == 0, stderr
    run, _ = lines
    assert run["verified"] is True and (run["ran"], run["pending"], run["dead"]) == (200, 0, 0)


@pytest.mark.parametrize(
    "args", [["cpu", "--kind", "async"], ["noop", "-t", "0"], ["noop", "-t", "lots"]],
)
def test_bench_refuses_an_async_cpu_run_and_a_bad_thread_count_in_one_line(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "hurtle", "bench", *args], capture_output=True, text=True,
                          timeout=60, check=False)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
