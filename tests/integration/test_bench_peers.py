"""`python -m benchmarks.peers` runs each peer through the workload and verifies it as hurtle's runs.

Speeds are never asserted: only that every run is checked, that a run that
lost or repeated tasks, or ran out of time, says so and has no speed, and that
the command's mistakes are one line and exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.peers import drain
from benchmarks.peers.base import Peer, Plan, Run, plan_of
from benchmarks.peers.runner import CHECKOUT, delete_namespace, run
from hurtle.bench.runner import Options
from tests.integration.conftest import hurtle_cli
from tests.redis_server import shared_redis_url

# Benchmarks run one at a time, even with tests spread over processes: the peers
# share queue names on one server, and each run measures the machine.
pytestmark = pytest.mark.xdist_group("bench")

PEERS = ("celery", "dramatiq", "rq", "arq", "huey", "taskiq")


def compare_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.peers ARGS`` as documented: from the checkout's root."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", *args],
        capture_output=True, text=True, timeout=timeout, cwd=CHECKOUT, env=dict(os.environ), check=False,
    )


def bench_json(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = compare_cli(*args, "--json", timeout=180)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


# -- each peer, end to end -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_runs_the_noop_workload_after_hurtle_and_every_task_is_counted(
    peer: str, redis_url: str
) -> None:
    code, lines, stderr = bench_json("noop", "-n", "100", "-p", "2", "--broker", redis_url, "--peers", peer)

    assert code == 0, stderr
    runs = [line for line in lines if line["type"] == "run"]
    assert [r["system"] for r in runs] == ["hurtle", peer]  # hurtle first, then the peer
    ours = runs[1]
    assert ours["verified"] is True and ours["config"]
    assert (ours["n"], ours["ran"], ours["lost"], ours["extra_runs"], ours["pending"]) == (100, 100, 0, 0, 0)
    assert {"enqueue_rate", "processing_rate", "wall_rate"} <= ours.keys()
    summaries = {line["system"]: line for line in lines if line["type"] == "summary"}
    assert summaries[peer]["verified"] is True and summaries[peer]["version"] != "?"
    assert "processing_rate" in summaries[peer]["hurtle_ratio"]


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["celery", "dramatiq"])
def test_a_peer_runs_the_chord_workload_and_its_callback_runs_once(peer: str, redis_url: str) -> None:
    code, lines, stderr = bench_json("chord", "-n", "50", "-p", "2", "--broker", redis_url, "--peers", peer)

    assert code == 0, stderr
    runs = [line for line in lines if line["type"] == "run"]
    assert [r["system"] for r in runs] == ["hurtle", peer]
    assert all(r["verified"] is True and (r["n"], r["ran"]) == (51, 51) for r in runs)


def test_a_peer_without_a_chord_is_refused_for_the_chord_workload_in_one_line(redis_url: str) -> None:
    done = compare_cli("chord", "-n", "10", "--broker", redis_url, "--peers", "rq")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "python -m benchmarks.peers: error: --peers: chord compares with celery and dramatiq; rq has no chord"
    ]


@pytest.mark.slow
def test_the_peers_run_latency_alternating_with_hurtle_and_leave_no_keys(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    # The server is shared: only the namespaces of this run's peer are its to answer for.
    pattern = "*hurtlebenchtaskiq*"
    before = set(client.scan_iter(match=pattern, count=1000))
    try:
        code, lines, stderr = bench_json(
            "latency", "-n", "20", "--scale", "0.01", "-p", "1", "--repeat", "2",
            "--broker", redis_url, "--peers", "taskiq",
        )

        assert code == 0, stderr
        runs = [line for line in lines if line["type"] == "run"]
        assert [r["system"] for r in runs] == ["hurtle", "taskiq"] * 2
        assert all(r["verified"] and r["ran"] == 20 and r["longest_sleep_s"] > 0 for r in runs)
        assert set(client.scan_iter(match=pattern, count=1000)) <= before
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize(("peer", "target"), [("dramatiq", "redis"), ("taskiq", "http")])
def test_a_peer_runs_io_after_hurtle_and_its_target_counts_every_round_trip(
    peer: str, target: str, redis_url: str
) -> None:
    code, lines, stderr = bench_json(
        "io", "-n", "60", "-p", "2", "--kind", "async", "--io", target, "--io-redis", redis_url,
        "--broker", redis_url, "--peers", peer,
    )

    assert code == 0, stderr
    runs = [line for line in lines if line["type"] == "run"]
    assert [r["system"] for r in runs] == ["hurtle", peer]
    assert all(r["verified"] and r["ran"] == 60 and 1 <= r["clients"] <= 2 for r in runs)


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["celery", "dramatiq"])
def test_celery_and_dramatiq_run_io_on_rabbitmq_beside_hurtle(peer: str, redis_url: str) -> None:
    code, lines, stderr = bench_json(
        "io", "-n", "60", "-p", "1", "--io-redis", redis_url,
        "--broker", "amqp://guest:guest@127.0.0.1:5672/", "--peers", peer,
    )

    assert code == 0, stderr
    runs = [line for line in lines if line["type"] == "run"]
    assert [r["system"] for r in runs] == ["hurtle", peer]
    assert all(r["verified"] and r["ran"] == 60 and r["broker"].startswith("amqp://") for r in runs)


# -- runs that must not report a speed -------------------------------------------------

_WORKER = """
import os, sys, time
from pathlib import Path
from hurtle.bench.runner import RECORDS_ENV, write_record

mode, n = sys.argv[1], int(sys.argv[2])
folder = Path(os.environ[RECORDS_ENV])
now = time.time()
if mode == "exit":
    sys.exit(3)
runs = {"lose": n - 3, "twice": n + 1}.get(mode, 0)
for step in range(600):
    if mode == "slow":
        runs = step
    write_record(folder, {"pid": os.getpid(), "runs": runs, "first": now, "last": time.time(),
                          "first_start": 0.0, "last_start": 0.0})
    time.sleep(0.05)
"""


def fake_peer(mode: str, left: int) -> Peer:
    """A peer whose 'worker' writes the records ``mode`` says, and whose queue keeps ``left``."""
    reads: list[int] = []

    def pending(spec: Run) -> int:
        reads.append(1)
        return spec.n if len(reads) == 1 else left  # full after sending, then what is left

    def plan(spec: Run) -> Plan:
        return plan_of([[sys.executable, "-c", textwrap.dedent(_WORKER), mode, str(spec.n)]], mode, "sync")

    return Peer(
        name="fake", distribution="hurtle", plan=plan, kind=lambda workload, kind: "sync",
        enqueue=lambda spec, calls: 0.01, enqueue_method="none", pending=pending,
        dead=lambda spec: None,
    )


@pytest.fixture
def quick_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(drain, "STALL_MIN_S", 1.0)
    monkeypatch.setattr(drain, "TIME_LIMIT_MIN_S", 2.0)
    monkeypatch.setattr(drain, "GRACE_S", 2.0)
    yield


RunFake = Callable[[str, int], Any]


@pytest.fixture
def run_fake(redis_url: str, quick_limits: None) -> RunFake:
    def go(mode: str, left: int = 0) -> Any:
        return run(fake_peer(mode, left), "noop", Options(100, redis_url, 1, 1000, "sync")).result

    return go


def test_a_peer_run_that_lost_tasks_reports_the_loss_and_no_speed(run_fake: RunFake) -> None:
    # Given a peer whose workers count 97 runs of 100 and then make no progress, 3 left queued
    result = run_fake("lose", 3)

    # Then the run is stopped, not verified, says why, and carries no rate
    assert not result.verified and result.rates() == {}
    assert result.problems[0] == "no task finished for 1 s, stopped with 97 of 100 ran"
    assert any(p.startswith("lost tasks: 3 of 100 runs not counted") for p in result.problems)
    assert "3 message(s) still pending after the worker exited" in result.problems
    assert result.as_json()["lost"] == 3


def test_a_peer_run_whose_tasks_ran_twice_is_not_verified(run_fake: RunFake) -> None:
    result = run_fake("twice")

    assert not result.verified
    assert result.problems == ["1 task(s) ran more than once (redelivered)"]


def test_a_peer_too_slow_for_the_time_limit_says_how_far_it_got_and_no_speed(run_fake: RunFake) -> None:
    result = run_fake("slow", 50)

    assert not result.verified and result.rates() == {}
    (problem,) = result.problems
    assert problem.startswith("not finished in 2 s: ") and problem.endswith(" of 100 ran")


def test_a_peer_whose_worker_exits_by_itself_is_not_verified(run_fake: RunFake) -> None:
    result = run_fake("exit", 100)

    assert not result.verified
    assert result.problems[0] == "the worker exited by itself (exit codes 3) with 0 of 100 ran"


def test_deleting_a_namespace_deletes_only_its_keys(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.set("hurtlebenchtestns1:a", 1)
        client.set("x:hurtlebenchtestns1", 1)
        client.set("hurtlebenchtestns2:a", 1)
        assert delete_namespace(redis_url, "hurtlebenchtestns1") == 2
        assert client.exists("hurtlebenchtestns2:a") == 1
    finally:
        client.delete("hurtlebenchtestns2:a")
        client.close()


# -- the command's mistakes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--peers", "celery,sidekiq", "--broker", "redis://127.0.0.1:6379/0"], "unknown peer 'sidekiq'"),
        (["--peers", "celery"], "the peers run on Redis"),
        (["--peers", "celery", "--broker", "sqlite:///x.db"], "the peers run on Redis"),
        (["--peers", ",", "--broker", "redis://127.0.0.1:6379/0"], "name one or more of"),
        (["--peers", "dramatiq,rq", "--broker", "amqp://guest:guest@127.0.0.1:5672/"],
         "rq runs on Redis only; on RabbitMQ: celery,dramatiq"),
    ],
)
def test_a_bad_peers_option_is_one_line_and_exit_code_2(args: list[str], says: str, tmp_path: Path) -> None:
    done = compare_cli("noop", "-n", "10", *args)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr
    assert done.stdout == ""


def test_a_peer_that_is_not_installed_is_named_with_the_extra_that_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import peers
    from benchmarks.peers.__main__ import _peer_names
    from hurtle.cli.common import UserError

    real = peers.importlib.util.find_spec
    without_huey = lambda name: None if name == "huey" else real(name)  # noqa: E731
    monkeypatch.setattr(peers.importlib.util, "find_spec", without_huey)

    with pytest.raises(UserError) as error:
        _peer_names("celery,huey", "redis://127.0.0.1:6379/0")

    assert error.value.message == "--peers: huey needs huey, not installed: pip install -e '.[bench]'"


@pytest.mark.parametrize("workload", ["noop", "ping"])
def test_hurtle_bench_peers_points_to_the_comparison_in_a_checkout_in_one_line_and_exit_code_2(
    workload: str,
) -> None:
    done = hurtle_cli("bench", workload, "-n", "10", "--peers", "celery", "--broker", "redis://127.0.0.1:6379/0")

    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "the peers comparison runs from a checkout: python -m benchmarks.peers" in line


def test_the_library_holds_no_peer_code() -> None:
    import hurtle.bench

    package = Path(hurtle.bench.__file__).parent
    assert not list(package.glob("peers/*.py")) and not (package / "floor.py").exists()
