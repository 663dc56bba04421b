"""`hurtle profile flame`: a task's kept profile written as flame graph files."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hurtle.cli import cli
from hurtle.errors import ConfigurationError
from hurtle.profiling import record
from hurtle.tallies import MemoryTallies

TASK = "shop.checkout"
RUN_JOB = "~run_job (/srv/hurtle/worker/loop_watch.py:52)"
CHECKOUT = "checkout (/srv/shop.py:10)"
CHARGE = "charge (/srv/shop.py:30)"
RENDER = "render (/srv/shop.py:50)"
#: Microseconds seen per stack, as a worker keeps them (plumbing first).
STACKS = {
    (RUN_JOB, CHECKOUT, CHARGE): 700_000,
    (RUN_JOB, CHECKOUT, RENDER): 200_000,
    (RUN_JOB, CHECKOUT): 90_000,
    (RUN_JOB,): 10_000,
}
SEEN_US = sum(STACKS.values())


def kept_profile() -> MemoryTallies:
    store = MemoryTallies()
    fields = {record.EXECUTIONS: 3, record.WALL: 1_500_000, record.CPU: 900_000, record.SEEN: SEEN_US}
    fields |= {record.STACK + record.SEPARATOR.join(stack): time for stack, time in STACKS.items()}
    asyncio.run(store.add(record.key(TASK), fields, record.TTL))
    return store


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryTallies:
    kept = kept_profile()
    monkeypatch.setattr("hurtle.tally_source.open_tallies", lambda *where: kept)
    return kept


def flame(*args: str) -> Result:
    return CliRunner().invoke(cli, ["profile", "flame", "--broker", "memory://", *args])


def test_folded_stacks_are_one_line_per_stack_without_hurtles_frames(
    store: MemoryTallies, tmp_path: Path
) -> None:
    out = tmp_path / "checkout.txt"
    assert flame(TASK, "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines() == [
        f"{CHECKOUT} 100000",  # its own 90 ms, and the 10 ms seen on hurtle's frames alone
        f"{CHECKOUT};{CHARGE} 700000",
        f"{CHECKOUT};{RENDER} 200000",
    ]


def test_all_frames_keeps_hurtles_frames(store: MemoryTallies, tmp_path: Path) -> None:
    out = tmp_path / "checkout.folded"
    assert flame(TASK, "-o", str(out), "--all-frames").exit_code == 0
    assert f"{RUN_JOB};{CHECKOUT};{CHARGE} 700000" in out.read_text().splitlines()
    assert f"{RUN_JOB} 10000" in out.read_text().splitlines()


def test_speedscope_file_has_valid_frame_indexes_and_weights_summing_to_the_time_seen(
    store: MemoryTallies, tmp_path: Path
) -> None:
    out = tmp_path / "checkout.speedscope.json"
    assert flame(TASK, "-o", str(out)).exit_code == 0
    document = json.loads(out.read_text())
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = document["shared"]["frames"]
    (profile,) = document["profiles"]
    assert profile["type"] == "sampled" and profile["unit"] == "microseconds"
    assert len(profile["samples"]) == len(profile["weights"])
    assert all(0 <= index < len(frames) for sample in profile["samples"] for index in sample)
    assert sum(profile["weights"]) == SEEN_US == profile["endValue"] - profile["startValue"]
    stacks = {tuple(frames[i]["name"] for i in sample) for sample in profile["samples"]}
    assert ("checkout", "charge") in stacks
    assert {"name": "charge", "file": "/srv/shop.py", "line": 30} in frames


def test_html_is_an_interactive_page_that_loads_nothing_from_the_network(
    store: MemoryTallies, tmp_path: Path
) -> None:
    out = tmp_path / "checkout.html"
    assert flame(TASK, "-o", str(out)).exit_code == 0
    page = out.read_text()
    assert "charge" in page and "/srv/shop.py" in page
    for load in (r'src\s*=\s*["\']https?:', r'href\s*=\s*["\']https?:', r"@import", r"url\(\s*['\"]?https?:"):
        assert not re.search(load, page, re.IGNORECASE), load


def test_an_unknown_suffix_is_one_line_and_exit_2(store: MemoryTallies, tmp_path: Path) -> None:
    result = flame(TASK, "-o", str(tmp_path / "checkout.png"))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and ".speedscope.json" in result.output
    assert not (tmp_path / "checkout.png").exists()


def test_a_task_without_a_profile_is_one_line_and_exit_2(store: MemoryTallies, tmp_path: Path) -> None:
    result = flame("shop.refund", "-o", str(tmp_path / "refund.txt"))
    assert result.exit_code == 2
    assert "no profile for 'shop.refund'" in result.output and result.output.strip().count("\n") == 0


def test_nowhere_keeping_profiles_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def nowhere(*where: object) -> MemoryTallies:
        raise ConfigurationError("nothing keeps profiles for memory://")

    monkeypatch.setattr("hurtle.tally_source.open_tallies", nowhere)
    result = flame(TASK, "-o", str(tmp_path / "checkout.txt"))
    assert result.exit_code == 2
    assert "nothing keeps profiles" in result.output and result.output.strip().count("\n") == 0
