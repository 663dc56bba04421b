"""The commands that read a broker read the app's: ``-A/--app`` or ``$HURTLE_APP``;
without one they say what they read, and never make a SQLite file to read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hurtle.brokers import Message, from_url
from hurtle.envelope import encode, make_envelope
from tests.integration.conftest import hurtle_cli, queue_table
from tests.redis_server import unique_redis_url

#: Neither the app nor the broker may come from the environment the tests run in.
NO_ENV: dict[str, str | None] = {"HURTLE_APP": None, "HURTLE_BROKER": None, "HURTLE_RESULTS": None}


def fill(url: str, queue: str) -> str:
    """One ready message and one dead letter on ``queue``; return the dead one's task id."""

    async def run() -> str:
        broker = from_url(url)
        try:
            dead, ready = (make_envelope("tasks.send_mail", [n], {}, queue=queue) for n in ("bob", "eve"))
            await broker.enqueue([Message(dead.id, queue, encode(dead))])
            (delivery,) = await broker.fetch([queue], 1, timeout=5.0)
            await broker.dead_letter(delivery, f"ValueError: no such user on {queue}")
            await broker.enqueue([Message(ready.id, queue, encode(ready))])
            return dead.id
        finally:
            await broker.close()

    return asyncio.run(run())


def write_app(directory: Path, broker_url: str) -> None:
    (directory / "tasks.py").write_text(f"import hurtle\n\napp = hurtle.App({broker_url!r})\n")


@pytest.fixture
def redis_app(tmp_path: Path) -> str:
    """A ``tasks.py`` in ``tmp_path`` whose app's broker is Redis, with one queue filled."""
    url = unique_redis_url()
    write_app(tmp_path, url)
    return fill(url, "mail")


def test_status_with_an_app_reads_the_apps_redis_and_makes_no_sqlite_file(
    tmp_path: Path, redis_app: str
) -> None:
    out = hurtle_cli("status", "-A", "tasks", cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 0, out.stderr
    mail = queue_table(out.stdout)["mail"]
    assert [mail[column] for column in ("ready", "delayed", "in flight", "dead")] == ["1", "0", "0", "1"]
    assert "redis://" in out.stdout and out.stderr == ""
    assert not (tmp_path / "hurtle.db").exists()


def test_dlq_list_with_an_app_reads_the_apps_redis(tmp_path: Path, redis_app: str) -> None:
    out = hurtle_cli("dlq", "list", "--app", "tasks:app", cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 0, out.stderr
    assert "no such user on mail" in out.stdout and redis_app in out.stdout
    assert not (tmp_path / "hurtle.db").exists()


def test_hurtle_app_in_the_environment_names_the_app(tmp_path: Path, redis_app: str) -> None:
    out = hurtle_cli("dlq", "requeue", redis_app, cwd=tmp_path, env={**NO_ENV, "HURTLE_APP": "tasks"})

    assert out.returncode == 0, out.stderr
    assert "requeued 1 message(s)" in out.stdout
    status = hurtle_cli("status", cwd=tmp_path, env={**NO_ENV, "HURTLE_APP": "tasks"})
    mail = queue_table(status.stdout)["mail"]
    assert [mail[column] for column in ("ready", "delayed", "in flight", "dead")] == ["2", "0", "0", "0"]
    assert not (tmp_path / "hurtle.db").exists()


def test_broker_overrides_the_apps_broker(tmp_path: Path, redis_app: str) -> None:
    other = f"sqlite:///{tmp_path}/other.db"
    fill(other, "other-queue")

    out = hurtle_cli("status", "-A", "tasks", "--broker", other, cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 0, out.stderr
    assert "other-queue" in out.stdout and "mail" not in out.stdout


def test_without_an_app_a_command_says_which_broker_it_reads(tmp_path: Path) -> None:
    fill(f"sqlite:///{tmp_path}/hurtle.db", "default")

    out = hurtle_cli("status", cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        f"reading sqlite:///{tmp_path}/hurtle.db (no -A/--app given; set HURTLE_APP or pass -A)"
    ]


@pytest.mark.parametrize(
    "command", [["status"], ["dlq", "list"], ["dlq", "requeue", "--all"], ["dlq", "purge", "--yes"]]
)
def test_a_command_that_reads_a_broker_makes_no_sqlite_file(tmp_path: Path, command: list[str]) -> None:
    out = hurtle_cli(*command, cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 2, out
    assert out.stderr.splitlines() == [
        f"hurtle: error: no hurtle database at {tmp_path}/hurtle.db"
        " (no -A/--app given; set HURTLE_APP or pass -A)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_apps_missing_sqlite_file_is_not_made_either(tmp_path: Path) -> None:
    write_app(tmp_path, "sqlite:///data/queue.db")
    (tmp_path / "data").mkdir()

    out = hurtle_cli("dlq", "list", "-A", "tasks", cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 2, out
    assert f"no hurtle database at {tmp_path}/data/queue.db" in out.stderr
    assert list((tmp_path / "data").iterdir()) == []
