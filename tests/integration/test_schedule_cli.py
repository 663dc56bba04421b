"""`hurtle schedule list` as a user types it, on a SQLite broker."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from hurtle.brokers import from_url
from hurtle.schedule.scheduler import Scheduler
from tests.integration.conftest import hurtle_cli

APP = '''
import hurtle

app = hurtle.App("sqlite:///{db}")

@app.periodic("*/5 * * * *", tz="Europe/Berlin")
def sweep() -> None: ...

@app.task
def report(kind: str) -> None: ...

app.schedule(report, every=60.0, args=("sales",), name="sales-report")
'''


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "periodic_tasks.py").write_text(APP.format(db=tmp_path / "broker.db"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("periodic_tasks", None)
    return tmp_path


def test_list_shows_every_schedule_with_no_leader_before_any_worker_ran(app_dir: Path) -> None:
    out = hurtle_cli("schedule", "list", "-A", "periodic_tasks", cwd=app_dir)
    as_json = json.loads(hurtle_cli("schedule", "list", "-A", "periodic_tasks", "--json", cwd=app_dir).stdout)

    assert out.returncode == 0, out.stderr
    assert "leader: none" in out.stdout
    assert "sales-report" in out.stdout and "periodic_tasks.sweep" in out.stdout
    assert as_json["leader"] is None
    assert [(s["name"], s["cron"], s["every"], s["last_run"]) for s in as_json["schedules"]] == [
        ("periodic_tasks.sweep", "*/5 * * * *", None, None), ("sales-report", None, 60.0, None),
    ]
    assert as_json["schedules"][0]["next_run"].endswith(("+01:00", "+02:00"))  # Berlin time
    assert not (app_dir / "broker.db").exists()  # listing creates no database


async def test_list_names_the_leader_and_the_last_tick_sent(app_dir: Path) -> None:
    import periodic_tasks as module  # the app the command reads, imported here to lead once

    clock = [1_800_000_000.5]
    broker = from_url(module.app.broker_url)
    store = broker.record_store()
    assert store is not None
    scheduler = Scheduler(module.app, store, 30.0, lambda: clock[0])
    try:
        await scheduler.step()  # first sight: a start mark
        clock[0] += 60.0
        await scheduler.step()  # sends sales-report's tick
    finally:
        await broker.close()
        module.app.close()
    as_json = json.loads(hurtle_cli("schedule", "list", "-A", "periodic_tasks", "--json", cwd=app_dir).stdout)

    assert as_json["leader"] == f"{socket.gethostname()}:{os.getpid()}"
    sales = next(s for s in as_json["schedules"] if s["name"] == "sales-report")
    assert sales["last_run"] == "2027-01-15T08:01:00+00:00"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["-A", "no_such_module"], "cannot import 'no_such_module'"),
        ([], "name the app whose schedules to list"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(app_dir: Path, args: list[str], complaint: str) -> None:
    out = hurtle_cli("schedule", "list", *args, cwd=app_dir, env={"HURTLE_APP": None})

    assert out.returncode == 2
    assert complaint in out.stderr and len(out.stderr.strip().splitlines()) == 1
