"""`hurtle worker --profile` on every broker: profiles from every process merge
in the broker's store (or a directory, where the broker keeps nothing), and
`hurtle profile show` reads them back as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import hurtle_cli
from tests.redis_server import unique_redis_url

pytestmark = pytest.mark.slow

TASKS = textwrap.dedent(
    """
    import asyncio
    import time

    import hurtle

    app = hurtle.App()
    kept = []  # what the leaky task never lets go of


    def crunch_numbers() -> int:
        total, end = 0, time.perf_counter() + 0.02
        while time.perf_counter() < end:
            total += sum(i * i for i in range(200))
        return total


    def spin_on_the_loop() -> None:
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass


    @app.task
    def crunch() -> int:
        return crunch_numbers()


    @app.task
    async def wait_then_spin() -> None:
        await asyncio.sleep(0.005)
        spin_on_the_loop()


    @app.task
    def leak() -> None:
        kept.append(bytearray(256 * 1024))  # touched pages: resident at once
        kept[-1][::4096] = b"x" * len(kept[-1][::4096])
    """
)


def write_app(where: Path) -> Path:
    where.mkdir(exist_ok=True)
    (where / "proftasks.py").write_text(TASKS)
    return where


def send(folder: Path, broker: str, task: str, count: int) -> None:
    code = f"import proftasks; proftasks.{task}.send_many([()] * {count}); proftasks.app.close()"
    env = {**os.environ, "HURTLE_BROKER": broker, "PYTHONPATH": str(folder)}
    subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, timeout=60)


def run_worker(folder: Path, broker: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``hurtle worker proftasks --burst ARGS``, to its end."""
    env = {**os.environ, "HURTLE_BROKER": broker}
    return subprocess.run(
        [sys.executable, "-m", "hurtle", "worker", "proftasks", "--burst", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def show(folder: Path, broker: str, task: str, *args: str) -> dict[str, Any]:
    shown = hurtle_cli("profile", "show", f"proftasks.{task}", "-A", "proftasks", "--json", *args,
                       cwd=folder, env={"HURTLE_BROKER": broker})
    assert shown.returncode == 0, shown.stderr
    data: dict[str, Any] = json.loads(shown.stdout)
    return data


def functions(data: dict[str, Any]) -> list[str]:
    return [entry["function"] for entry in data["functions"]]


BROKERS: dict[str, Callable[[Path], tuple[str, list[str]]]] = {
    "sqlite": lambda tmp: (f"sqlite:///{tmp}/broker.db", []),
    "redis": lambda tmp: (unique_redis_url(), []),
    "amqp": lambda tmp: (unique_amqp_url(), ["--profile-dir", str(tmp / "profiles")]),
}


@pytest.mark.parametrize("kind", sorted(BROKERS))
def test_profiles_of_every_process_merge_and_show_where_the_time_went(kind: str, tmp_path: Path) -> None:
    broker, store_args = BROKERS[kind](tmp_path)
    folder = write_app(tmp_path / "app")
    send(folder, broker, "crunch", 40)
    send(folder, broker, "wait_then_spin", 40)

    ran = run_worker(folder, broker, "-p", "2", "--profile", "all", *store_args)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "profile: proftasks.crunch, proftasks.leak, proftasks.wait_then_spin at 100 Hz" in ran.stderr

    crunch = show(folder, broker, "crunch", *store_args)
    assert crunch["executions"] == 40  # every execution, from both processes
    assert "crunch_numbers" in functions(crunch), ran.stderr
    assert "spin_on_the_loop" not in functions(crunch)
    waiting = show(folder, broker, "wait_then_spin", *store_args)
    assert waiting["executions"] == 40
    assert "spin_on_the_loop" in functions(waiting)
    assert "crunch_numbers" not in functions(waiting)


def test_a_task_that_keeps_what_it_allocates_reads_as_growing(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path}/broker.db"
    folder = write_app(tmp_path / "app")
    send(folder, broker, "leak", 60)
    send(folder, broker, "crunch", 60)

    ran = run_worker(folder, broker, "-p", "1", "-t", "1", "--profile", "all", "--profile-memory")
    assert ran.returncode == 0, ran.stdout + ran.stderr

    leaky = show(folder, broker, "leak", "--memory")
    assert leaky["memory"]["growing"], leaky["memory"]
    assert any(site["file"].endswith("proftasks.py") for site in leaky["memory"]["sites"]), leaky["memory"]
    assert not show(folder, broker, "crunch")["memory"]["growing"]


def test_a_task_name_the_app_does_not_have_is_one_line(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "app")
    ran = run_worker(folder, f"sqlite:///{tmp_path}/broker.db", "--profile", "proftasks.nosuch")
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "hurtle: error: --profile: no task named proftasks.nosuch"
        " (tasks: proftasks.crunch, proftasks.leak, proftasks.wait_then_spin)"
    ]


def test_profiles_with_nowhere_to_go_are_refused_before_the_worker_starts(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "app")
    ran = run_worker(folder, unique_amqp_url(), "--profile", "all")
    assert ran.returncode == 2
    (line,) = ran.stderr.strip().splitlines()
    assert "--profile-dir" in line
