"""``hurtle status --watch``: the status view redrawn in place until Ctrl-C, run on a
pseudo-terminal as a user sees it, on SQLite, Redis and RabbitMQ with its results
in Redis; and the view's sections, built from one snapshot.

Each test reads the output as it comes and waits for the redraw it looks for:
no sleeps, and no figure about how long a refresh takes.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from hurtle.brokers import QueueStats
from hurtle.cli.common import Where
from hurtle.cli.status_view import SECTIONS, Snapshot, sections
from hurtle.urls import SecretURL
from tests.integration.conftest import APPS, WAIT_LIMIT, queue_table
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

INTERVAL = "0.2"  # seconds between refreshes: a test sees several in a second
HEADER = "refreshed every"  # the first line of every redraw
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")  # colours and cursor moves


class Watch:
    """``hurtle status --watch`` on a pseudo-terminal 200 columns wide; its output as
    the terminal received it, control sequences removed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.master, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
        environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hurtle", "status", *args, "--watch", "--interval", INTERVAL],
            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, cwd=APPS, env={**environ, **(env or {})},
        )
        os.close(terminal)
        self.seen = ""

    def redraws(self) -> list[str]:
        """Every view drawn in full so far (the next one has begun), from its header line on."""
        return [HEADER + part for part in self.seen.split(HEADER)[1:-1]]

    def wait_for(self, condition: Callable[[list[str]], Any], what: str) -> Any:
        """Read until ``condition(redraws)`` is truthy; fail after ``WAIT_LIMIT`` seconds."""
        deadline = time.monotonic() + WAIT_LIMIT
        while not (found := condition(self.redraws())):
            assert self.proc.poll() is None, f"the watch ended: {self.proc.stderr.read()!r}"  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last view:\n{self.redraws()[-1:]}")
            # poll, not select: a long test run's descriptors may number past select's 1024
            poller = select.poll()
            poller.register(self.master, select.POLLIN)
            if poller.poll(100):
                self.seen += _CONTROL.sub("", os.read(self.master, 65536).decode(errors="replace"))
        return found

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C, as the terminal sends it: the exit code and what went to stderr."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(WAIT_LIMIT)
        return code, self.proc.stderr.read().decode()  # type: ignore[union-attr]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def watching() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        watch.close()


def ready_in(queue: str, count: int) -> Callable[[list[str]], bool]:
    """The latest view shows ``count`` ready in ``queue``."""
    return lambda views: bool(views) and queue_table(views[-1]).get(queue, {}).get("ready") == str(count)


def test_the_view_is_redrawn_with_what_changed_until_ctrl_c_which_exits_quietly(
    app_on_each_store: Any, watching: list[Watch]
) -> None:
    # Given a queue with one task, watched
    app_on_each_store.add.send(1, 1)
    watch = Watch("-A", "workerapp")
    watching.append(watch)
    watch.wait_for(ready_in("default", 1), "a view with one ready task")
    drawn = len(watch.redraws())

    # When another task is sent
    app_on_each_store.add.send(2, 2)

    # Then a later redraw shows both, with the workers' table (or why there is none) below
    watch.wait_for(ready_in("default", 2), "a view with two ready tasks")
    assert len(watch.redraws()) > drawn
    assert "no workers running" in watch.redraws()[-1]
    # And Ctrl-C ends it with exit code 0, no traceback
    code, errors = watch.interrupt()
    assert code == 0, errors
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors


def test_a_broker_that_goes_away_is_a_line_in_the_view_and_the_view_comes_back_with_it(
    tmp_path: Path, watching: list[Watch]
) -> None:
    # Given a private Redis, watched
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        _send(server.url)
        watch = Watch("--broker", server.url)
        watching.append(watch)
        watch.wait_for(ready_in("default", 1), "a view with the ready task")

        # When the server stops, then the view says it cannot read, and keeps trying
        server.stop()
        watch.wait_for(lambda views: "could not read" in views[-1], "a line saying the broker is gone")
        failed = len(watch.redraws())
        watch.wait_for(lambda views: len(views) > failed and "could not read" in views[-1], "another try")

        # When it is back, then so is the view
        server.start()
        watch.wait_for(lambda views: ready_in("default", 1)(views) and "could not read" not in views[-1],
                       "the view to come back")
        code, errors = watch.interrupt()
        assert code == 0, errors
    finally:
        server.stop()


def _send(url: str) -> None:
    import hurtle

    app = hurtle.App(url)
    try:
        app.send_task("tasks.add", 1, 1)
    finally:
        app.close()


WHERE = Where(SecretURL("redis://127.0.0.1:6379/0"), None, 30.0, False)


def test_the_view_is_the_sections_in_order_each_drawn_from_one_snapshot() -> None:
    queues = [QueueStats("default", ready=3, delayed=0, in_flight=1, dead=0, oldest_ready_age=5.0)]

    drawn = sections(Snapshot(WHERE, queues, workers=[]))
    unseen = sections(Snapshot(WHERE, [], workers=None))

    assert len(drawn) == len(SECTIONS) == 3
    assert isinstance(drawn[0], Table) and drawn[1] == "no workers running"
    assert isinstance(drawn[2], str) and drawn[2].startswith("tasks: not visible")  # no history read
    assert unseen[0] == "no queues on redis://127.0.0.1:6379/0"
    assert isinstance(unseen[1], str) and unseen[1].startswith("workers: not visible (redis")
