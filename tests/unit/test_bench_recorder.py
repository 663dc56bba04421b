"""A worker process's run record is readable while it works, and final once saved."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hurtle.bench.runner import RECORDS_ENV, RunRecorder, read_records

WAIT_S = 5.0  # a bound on a wait for a record write, never expected to be reached


def wait_for_runs(folder: Path, runs: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while read_records(folder).runs != runs:
        assert time.monotonic() < deadline, f"the records never counted {runs} run(s)"
        time.sleep(0.01)


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(RECORDS_ENV, str(tmp_path))
    return tmp_path


def test_the_record_is_rewritten_while_tasks_run_not_only_when_the_worker_stops(records: Path) -> None:
    recorder = RunRecorder()

    recorder.record()
    wait_for_runs(records, 1)
    recorder.record()
    recorder.record()
    wait_for_runs(records, 3)

    (record,) = [json.loads(p.read_text()) for p in records.glob("*.json")]
    assert record["pid"] == os.getpid() and record["first"] <= record["last"]


def test_a_saved_record_is_final(records: Path) -> None:
    recorder = RunRecorder()
    recorder.record()
    recorder.save()

    recorder.runs = 99  # what a late periodic write would carry
    time.sleep(3 * RunRecorder.WRITE_INTERVAL_S)

    assert read_records(records).runs == 1
    assert not list(records.glob(".*.tmp"))  # every write replaced the file whole


def test_a_forked_process_counts_its_own_runs_in_a_record_of_its_own(records: Path) -> None:
    recorder = RunRecorder()
    recorder.record()  # the parent's run, and its writer thread

    pid = os.fork()
    if pid == 0:  # the child: one run of its own, written by a writer of its own
        try:
            recorder.record()
            recorder.record()
            deadline = time.monotonic() + WAIT_S
            while not (records / f"{os.getpid()}.json").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            recorder.save()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)

    child = json.loads((records / f"{pid}.json").read_text())
    assert child["runs"] == 2  # not 3: the parent's run stays the parent's
    wait_for_runs(records, 3)
