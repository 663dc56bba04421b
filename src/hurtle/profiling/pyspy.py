"""Run py-spy against worker processes, and read what it says.

py-spy reads another process's memory (ptrace rights), so it can sample or
dump a worker that is stuck, even in C code holding the GIL, without its help.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'hurtle[profile]'"

#: What py-spy says when the kernel refuses it another process's memory: as an
#: unprivileged user ("Permission Denied: Try running again with elevated
#: permissions..."), and as root without CAP_SYS_PTRACE ("Permission denied (os
#: error 13)"; "Operation not permitted (os error 1)" from the ptrace calls).
_DENIED = ("permission denied", "operation not permitted")

PTRACE_FIX = (
    "run as root, or give the container the SYS_PTRACE capability"
    " (Docker: --cap-add SYS_PTRACE; Kubernetes: securityContext.capabilities.add: [SYS_PTRACE])"
)


class PySpyError(Exception):
    """py-spy is missing, was refused, or failed: the message is one line for the user."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        #: The kernel refused access to the process (no ptrace rights).
        self.denied = denied


def executable() -> str:
    """The py-spy beside this interpreter (its virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise PySpyError(f"py-spy is not installed: {INSTALL_HINT}")
    return found


def is_denied(error_text: str) -> bool:
    lowered = error_text.lower()
    return any(phrase in lowered for phrase in _DENIED)


def denied_message(pid: int) -> str:
    return f"not permitted to read process {pid} (ptrace): {PTRACE_FIX}"


def failure_message(pid: int, error_text: str) -> str:
    """One line for what py-spy printed when it failed on ``pid``."""
    if is_denied(error_text):
        return denied_message(pid)
    lines = [line.strip() for line in error_text.splitlines() if line.strip()]
    first = lines[0].removeprefix("Error: ") if lines else "no output"
    return f"py-spy failed on process {pid}: {first}"


def check_readable(pid: int) -> None:
    """Refuse early when this process may not read ``pid``: the check py-spy makes
    first (reading its executable's path), because ``record --subprocesses``
    reports a refusal only as "No python processes found"."""
    try:
        os.readlink(f"/proc/{pid}/exe")
    except PermissionError as exc:
        raise PySpyError(denied_message(pid), denied=True) from exc
    except FileNotFoundError as exc:
        raise PySpyError(f"no process {pid}") from exc


def _run(pid: int, arguments: list[str], timeout: float) -> str:
    check_readable(pid)
    try:
        done = subprocess.run(
            [executable(), *arguments], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PySpyError(f"py-spy did not finish on process {pid} within {timeout:.0f} s") from exc
    if done.returncode != 0:
        error_text = done.stderr or done.stdout
        raise PySpyError(failure_message(pid, error_text), denied=is_denied(error_text))
    return done.stdout


#: py-spy's ``--format`` for each output suffix.
RECORD_FORMATS = {
    ".svg": "flamegraph", ".speedscope.json": "speedscope", ".json": "speedscope", ".txt": "raw",
}


def record(pid: int, seconds: int, output: Path, file_format: str) -> None:
    """Sample ``pid`` and every process under it, idle threads too, for ``seconds``."""
    _run(pid, [
        "record", "--pid", str(pid), "--subprocesses", "--idle", "--duration", str(seconds),
        "--format", file_format, "--output", str(output),
    ], timeout=seconds + 60)


@dataclass(frozen=True)
class StackFrame:
    function: str
    file: str
    line: int
    #: Local variables as py-spy shows them: str and numbers by value, objects as ``<Type at 0x...>``.
    locals: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"


@dataclass(frozen=True)
class ThreadStack:
    thread_id: int
    name: str
    active: bool
    owns_gil: bool
    #: Innermost frame first, as py-spy lists them.
    frames: list[StackFrame]


def dump(pid: int) -> list[ThreadStack]:
    """The stacks of every thread of ``pid`` now, with their frames' locals."""
    return parse_dump(_run(pid, ["dump", "--pid", str(pid), "--json", "--locals"], timeout=60))


def parse_dump(text: str) -> list[ThreadStack]:
    """py-spy's ``dump --json --locals`` output, sorted out."""
    return [_thread(raw) for raw in json.loads(text)]


def _thread(raw: dict[str, Any]) -> ThreadStack:
    frames = [
        StackFrame(
            frame.get("name", "?"), frame.get("short_filename") or frame.get("filename", "?"),
            int(frame.get("line", 0)),
            {local["name"]: local.get("repr") or "" for local in frame.get("locals") or []},
        )
        for frame in raw.get("frames", [])
    ]
    thread_id = raw.get("os_thread_id") or raw.get("thread_id", 0)
    name = raw.get("thread_name") or ""
    return ThreadStack(int(thread_id), name, bool(raw.get("active")), bool(raw.get("owns_gil")), frames)
