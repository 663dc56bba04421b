"""Brokers bound to one machine or one process: who can read a SQLite broker's
files, and a worker that could never receive work."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import hurtle
from hurtle.brokers import Message, from_url
from hurtle.errors import ConfigurationError
from tests.integration.conftest import APPS, hurtle_cli

SQLITE_FILES = ("broker.db", "broker.db-wal", "broker.db-shm")


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a user (022): files are world-readable unless asked."""
    before = os.umask(0o022)
    yield
    os.umask(before)


async def modes_while_open(url: str, directory: Path) -> dict[str, int]:
    """Send a message through a broker on ``url`` and, while it is open (SQLite deletes
    the WAL when the last connection closes), read the modes of its files."""
    broker = from_url(url)
    try:
        await broker.enqueue([Message("m1", "default", b"{}")])
        return {name: stat.S_IMODE((directory / name).stat().st_mode) for name in SQLITE_FILES}
    finally:
        await broker.close()


@pytest.mark.usefixtures("usual_umask")
async def test_a_new_sqlite_database_and_its_wal_files_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    found = await modes_while_open(f"sqlite:///{tmp_path}/broker.db", tmp_path)

    assert found == dict.fromkeys(SQLITE_FILES, 0o600)


@pytest.mark.usefixtures("usual_umask")
async def test_the_mode_option_sets_the_permissions_of_a_new_sqlite_database_and_its_wal_files(
    tmp_path: Path,
) -> None:
    found = await modes_while_open(f"sqlite:///{tmp_path}/broker.db?mode=0640", tmp_path)

    assert found == dict.fromkeys(SQLITE_FILES, 0o640)


@pytest.mark.parametrize("mode", ["ro", "0400", "0800", "1777", ""])
def test_a_mode_that_is_not_owner_read_write_permissions_is_refused(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ConfigurationError, match=f"mode={mode!r}: file permissions in octal"):
        hurtle.App(f"sqlite:///{tmp_path}/broker.db?mode={mode}")
    assert not (tmp_path / "broker.db").exists()


@pytest.mark.parametrize(
    "args",
    [["worker", "workerapp", "--broker", "memory://"], ["worker", "memoryapp"]],
    ids=["--broker", "the app's broker"],
)
def test_a_worker_on_a_broker_no_other_process_can_reach_is_refused_in_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "memoryapp.py").write_text("import hurtle\n\napp = hurtle.App('memory://')\n")
    environ = {"PYTHONPATH": os.pathsep.join([str(APPS), str(tmp_path)]), "WORKERAPP_DIR": str(tmp_path)}

    out = hurtle_cli(*args, cwd=tmp_path, env=environ)

    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "memory://" in out.stderr and "no other process" in out.stderr
