"""``hurtle worker --cpu-pin``: which CPU each process runs on, and when ``auto`` pins."""

from __future__ import annotations

import os

import pytest

from hurtle.worker import cpu_pin
from hurtle.worker.cpu_pin import cpu_list, cpu_plan, describe

pytestmark = pytest.mark.skipif(not cpu_pin.can_pin(), reason="pinning needs sched_setaffinity (Linux)")


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The CPUs the supervisor may use, as a cpuset that left a gap would give them."""
    allowed = [0, 1, 4, 5]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(allowed))
    return allowed


def test_auto_pins_processes_that_fill_the_cpus_one_each(cpus: list[int]) -> None:
    assert cpu_plan("auto", 4) == [0, 1, 4, 5]


def test_auto_pins_a_multiple_of_the_cpus_in_turn(cpus: list[int]) -> None:
    assert cpu_plan("auto", 8) == [0, 1, 4, 5, 0, 1, 4, 5]


@pytest.mark.parametrize("processes", [1, 2, 3, 6])
def test_auto_leaves_processes_that_cannot_share_the_cpus_evenly_unpinned(
    cpus: list[int], processes: int
) -> None:
    assert cpu_plan("auto", processes) is None


def test_on_pins_in_turn_whatever_the_count(cpus: list[int]) -> None:
    assert cpu_plan("on", 2) == [0, 1]
    assert cpu_plan("on", 6) == [0, 1, 4, 5, 0, 1]


def test_off_never_pins(cpus: list[int]) -> None:
    assert cpu_plan("off", 4) is None


def test_a_platform_that_cannot_pin_pins_nothing(cpus: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_pin, "can_pin", lambda: False)
    assert cpu_plan("auto", 4) is None
    assert cpu_plan("on", 4) is None


def test_the_start_up_line_names_the_cpus_as_a_cpuset_list() -> None:
    line = describe([0, 1, 2, 3, 8, 0, 1, 2, 3, 8])
    assert line == "each process pinned to one CPU, in turn over CPUs 0-3,8"
    assert describe(None).startswith("not pinned")
    assert cpu_list([0, 2, 3, 4, 7]) == "0,2-4,7"


def test_a_cpu_that_cannot_be_had_leaves_the_process_where_it_was(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(pid: int, cpus: set[int]) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    cpu_pin.pin(7)
    assert "could not pin this process to CPU 7" in caplog.text


def test_cpu_pin_on_where_nothing_can_be_pinned_is_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from hurtle.cli import cli
    from hurtle.cli import worker as worker_cli

    monkeypatch.setattr(worker_cli, "can_pin", lambda: False)
    result = CliRunner().invoke(cli, ["worker", "tasks", "--cpu-pin", "on"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.endswith("--cpu-pin on: this platform cannot pin a process to a CPU (use auto or off)")
