"""Find running ``hurtle worker`` supervisors and their processes, from /proc (Linux).

A worker's processes are forked from its supervisor, so they share its command
line: the supervisor is the matching process whose parent does not match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hurtle.settings import ENV_APP

PROC = Path("/proc")


@dataclass(frozen=True)
class WorkerProcess:
    pid: int
    parent: int
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def worker_arguments(argv: tuple[str, ...]) -> tuple[str, ...] | None:
    """What follows ``worker`` in a ``hurtle worker`` command line (``hurtle`` as
    a script or ``python -m hurtle``), or None for any other command."""
    for at, word in enumerate(argv[:-1]):
        if os.path.basename(word) == "hurtle" and argv[at + 1] == "worker":
            return argv[at + 2:]
        if word == "-m" and argv[at + 1] == "hurtle" and argv[at + 2:at + 3] == ("worker",):
            return argv[at + 3:]
    return None


def _same_app(given: str, named: str) -> bool:
    """``tasks`` and ``tasks:app`` are the same app spec (ATTR defaults to ``app``)."""
    def whole(spec: str) -> str:
        return spec if ":" in spec else spec + ":app"

    return whole(given) == whole(named)


def _read(pid: int) -> WorkerProcess | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return None
    # The command name in stat is in parentheses and may hold spaces: read after the last one.
    parent = int(stat.rpartition(")")[2].split()[1])
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return WorkerProcess(pid, parent, argv)


def _app_from_environment(pid: int) -> str | None:
    """The ``$HURTLE_APP`` a worker started with, when its command line names no app."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = ENV_APP.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def _runs_app(process: WorkerProcess, app_spec: str) -> bool:
    arguments = worker_arguments(process.argv)
    if arguments is None:
        return False
    if any(_same_app(app_spec, word) for word in arguments if not word.startswith("-")):
        return True
    named = _app_from_environment(process.pid)
    return named is not None and _same_app(app_spec, named)


def supervisors(app_spec: str) -> list[WorkerProcess]:
    """Every ``hurtle worker`` supervisor on this machine running ``app_spec``."""
    matching: dict[int, WorkerProcess] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            process = _read(int(entry.name))
            if process is not None and _runs_app(process, app_spec):
                matching[process.pid] = process
    return sorted((p for p in matching.values() if p.parent not in matching), key=lambda p: p.pid)


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (every thread's children: Linux 3.5 and later)."""
    found: list[int] = []
    try:
        for thread in (PROC / str(pid) / "task").iterdir():
            found += [int(child) for child in (thread / "children").read_text().split()]
    except OSError:
        return found
    return sorted(set(found))


def forked_by_its_supervisor(pid: int) -> bool:
    """Whether ``pid`` is one of a worker's processes rather than its supervisor:
    its parent runs the same ``hurtle worker`` command line."""
    process = _read(pid)
    if process is None or worker_arguments(process.argv) is None:
        return False
    parent = _read(process.parent)
    return parent is not None and parent.argv == process.argv


def command_line(pid: int) -> str:
    process = _read(pid)
    return process.command if process is not None else "?"
