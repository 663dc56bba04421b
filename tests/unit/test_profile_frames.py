"""How a worker names the code it samples: short paths, the same on every machine,
that still tell the user's own code from libraries and from hurtle's plumbing."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

import hurtle
from hurtle.profiling.frames import LIBRARY, PLUMBING, USER, Labels, classify
from hurtle.profiling.record import Frame
from hurtle.profiling.setup_detector import setup_suspects

from .profiles import profile_of


def test_an_installed_package_is_shown_from_its_package_root() -> None:
    origin, path = classify("/opt/venv/lib/python3.11/site-packages/redis/client.py")
    assert (origin, path) == (LIBRARY, "site-packages/redis/client.py")
    assert classify("/usr/lib/python3/dist-packages/redis/client.py")[1] == "site-packages/redis/client.py"


def test_the_standard_library_is_shown_from_its_root_and_asyncio_is_plumbing() -> None:
    assert classify(json.__file__) == (LIBRARY, "stdlib/json/__init__.py")
    origin, path = classify(asyncio.tasks.__file__)
    assert (origin, path) == (PLUMBING, "stdlib/asyncio/tasks.py")


def test_hurtle_itself_is_plumbing() -> None:
    origin, path = classify(hurtle.worker.loop_watch.__file__)  # type: ignore[attr-defined]
    assert (origin, path) == (PLUMBING, "hurtle/worker/loop_watch.py")


def test_the_users_own_file_is_shown_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert classify(str(tmp_path / "app" / "tasks.py")) == (USER, os.path.join("app", "tasks.py"))


def test_a_label_names_the_function_by_qualname_and_first_line() -> None:
    def outer() -> None: ...

    label, origin, _ = Labels().of(outer.__code__)
    frame = Frame.parse(label)
    assert frame.name.endswith("<locals>.outer")
    assert frame.line == outer.__code__.co_firstlineno
    assert not frame.plumbing and origin == USER


def test_a_setup_suspect_is_called_from_the_users_line_not_a_librarys() -> None:
    task = "pool_per_call (tasks.py:10)"
    build = "make_client (tasks.py:4)"
    init = "ConnectionPool.__init__ (site-packages/redis/connection.py:1100)"
    connect = "Connection.connect (site-packages/redis/connection.py:300)"
    work = "Redis.incr (site-packages/redis/commands/core.py:1800)"
    profile = profile_of(
        "tasks.pool_per_call", {(task, build, init, connect): 800, (task, work): 200}, executions=50,
    )
    (suspect,) = setup_suspects(profile)
    assert suspect.called_from is not None
    assert Frame.parse(suspect.called_from).path == "tasks.py"
