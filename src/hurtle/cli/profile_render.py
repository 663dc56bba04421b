"""What ``hurtle profile show`` prints: one profile's figures as tables, or as one JSON object.

Frame names, paths and task names come from whatever the workers sampled: every
one is printed through ``literal`` (never read as Rich markup).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hurtle.cli.literal import literal, when
from hurtle.profiling.frames import LIBRARY_PREFIXES
from hurtle.profiling.memory import GROWING_BYTES_PER_EXECUTION, MemoryView
from hurtle.profiling.record import Frame, Profile
from hurtle.profiling.report import (
    ENTRY,
    CallerTime,
    FunctionTime,
    LineTime,
    SortBy,
    Timing,
    per_execution_ms,
    share,
)
from hurtle.profiling.setup_detector import SetupSuspect

_STDLIB = re.compile(r"^.*/lib/python\d+\.\d+/")
MEMORY_HINT = "no allocation sites recorded: run the worker with --profile-memory to record them"


@dataclass(frozen=True)
class Shown:
    """Everything ``show`` prints about one task."""

    profile: Profile
    seen_us: int
    timing: Timing
    sort: SortBy
    all_frames: bool
    functions: list[FunctionTime]
    lines: list[LineTime]
    suspects: list[SetupSuspect]
    memory: MemoryView
    #: With ``--callers``: the function asked about, and who calls it.
    callee: FunctionTime | None = None
    callers: tuple[CallerTime, ...] = ()


def to_json(shown: Shown, *, with_callers: bool) -> dict[str, Any]:
    """One object with every figure ``show`` prints; shares are fractions of the task's seen time."""
    profile, timing, n = shown.profile, shown.timing, shown.profile.executions
    data: dict[str, Any] = {
        "task": profile.task,
        "executions": n,
        "async_executions": timing.async_executions,
        "sync_executions": timing.sync_executions,
        "last_write": profile.last,
        "wall_ms_per_execution": timing.wall_ms,
        "cpu_ms_per_execution": timing.cpu_ms,
        "waiting_ms_per_execution": timing.waiting_ms,
        "cpu_share": timing.cpu_share,
        "waiting_share": timing.waiting_share,
        "seen_ms_per_execution": per_execution_ms(shown.seen_us, n),
        "sort": shown.sort,
        "all_frames": shown.all_frames,
        "functions": [_function_json(time, shown) for time in shown.functions],
        "lines": [
            {"file": line.path, "line": line.line, "share": share(line.us, shown.seen_us),
             "ms_per_execution": per_execution_ms(line.us, n)}
            for line in shown.lines
        ],
        "setup_suspects": [_suspect_json(suspect) for suspect in shown.suspects],
        "memory": _memory_json(shown.memory),
    }
    if with_callers and shown.callee is not None:
        data["callers"] = _callers_json(shown)
    return data


def _place(frame: Frame) -> dict[str, Any]:
    known = frame.path != "?"
    return {
        "function": frame.name, "file": frame.path if known else None, "line": frame.line if known else None,
    }


def _function_json(time: FunctionTime, shown: Shown) -> dict[str, Any]:
    n = shown.profile.executions
    return {
        **_place(time.frame),
        "plumbing": time.frame.plumbing,
        "total": share(time.total_us, shown.seen_us),
        "self": share(time.self_us, shown.seen_us),
        "total_ms_per_execution": per_execution_ms(time.total_us, n),
        "self_ms_per_execution": per_execution_ms(time.self_us, n),
        "executions_seen": time.executions_seen,
        # 0: the task's own function; 1: a function it calls itself (a bar right under it in a flame graph).
        "depth": time.depth,
    }


def _callers_json(shown: Shown) -> dict[str, Any]:
    assert shown.callee is not None
    callee, n = shown.callee, shown.profile.executions
    return {
        **_place(callee.frame),
        "total": share(callee.total_us, shown.seen_us),
        "total_ms_per_execution": per_execution_ms(callee.total_us, n),
        "callers": [
            {
                **_caller_place(caller),
                "share_of_function": share(caller.us, callee.total_us),
                "share": share(caller.us, shown.seen_us),
                "ms_per_execution": per_execution_ms(caller.us, n),
            }
            for caller in shown.callers
        ],
    }


def _caller_place(caller: CallerTime) -> dict[str, Any]:
    if caller.label == ENTRY:
        return {"function": ENTRY, "file": None, "line": None}
    return _place(Frame.parse(caller.label))


def _suspect_json(suspect: SetupSuspect) -> dict[str, Any]:
    return {
        **_place(suspect.frame),
        "share": suspect.share,
        "executions_seen": suspect.executions_seen,
        "executions": suspect.executions,
        "called_from": None if suspect.called_from is None else _place(Frame.parse(suspect.called_from)),
        "message": suspect.message,
    }


def _memory_json(memory: MemoryView) -> dict[str, Any]:
    return {
        "rss_growth": memory.rss_growth,
        "rss_growth_per_execution": memory.growth_per_execution,
        "rss_peak": memory.rss_peak,
        "growing": memory.growing,
        "growing_bytes_per_execution": GROWING_BYTES_PER_EXECUTION,
        "enough_executions": memory.enough_executions,
        "sites_recorded": memory.sites_recorded,
        "sites": [
            {"file": site.path, "line": site.line, "bytes": site.bytes,
             "bytes_per_execution": site.bytes / max(memory.executions, 1)}
            for site in memory.sites
        ],
    }


def render(shown: Shown, console: Console, *, with_memory: bool) -> None:
    """``show``'s tables: the header, the setup suspects, the functions, the hot
    lines, and the callers or the allocation sites when asked for."""
    _header(shown, console)
    for suspect in shown.suspects:
        console.print(_suspect_line(suspect))
    console.print(_functions_table(shown))
    if shown.lines:
        console.print(_lines_table(shown))
    if shown.callee is not None:
        console.print(_callers_table(shown))
    if with_memory:
        _memory_sites(shown, console)


def _header(shown: Shown, console: Console) -> None:
    profile, timing = shown.profile, shown.timing
    title = Text.assemble(
        literal(profile.task), (" : ", "dim"),
        f"{timing.executions} execution(s) profiled ({timing.async_executions} async, "
        f"{timing.sync_executions} sync), last written ", when(profile.last),
    )
    console.print(title)
    console.print(
        f"wall {_ms(timing.wall_ms)} per execution: on CPU {_ms(timing.cpu_ms)} ({timing.cpu_share:.0%}), "
        f"waiting {_ms(timing.waiting_ms)} ({timing.waiting_share:.0%})",
        highlight=False,
    )
    console.print(_memory_line(shown.memory), highlight=False)


def _memory_line(memory: MemoryView) -> Text:
    growth, peak = _signed_bytes(memory.growth_per_execution), human_bytes(memory.rss_peak)
    line = Text(f"memory: RSS {growth} per execution, peak {peak}")
    if memory.growing:
        line.append(f"  growing (>= {human_bytes(GROWING_BYTES_PER_EXECUTION)} per execution)", "bold red")
    elif not memory.enough_executions:
        line.append("  (too few executions to tell growth from warm-up)", "dim")
    return line


def _suspect_line(suspect: SetupSuspect) -> Text:
    line = Text.assemble(("setup? ", "bold yellow"), literal(suspect.message))
    if suspect.called_from is not None:
        caller = Frame.parse(suspect.called_from)
        line.append_text(Text.assemble(" (called from ", literal(_named(caller)), ")"))
    return line


def _functions_table(shown: Shown) -> Table:
    by = "self" if shown.sort == "self" else "total"
    table = Table(
        "function", "file:line", "total", "self", "total ms/exec",
        title=f"functions by {by} share" + ("" if shown.all_frames else " (plumbing folded: --all-frames)"),
    )
    n = shown.profile.executions
    for time in shown.functions:
        table.add_row(
            literal(time.frame.name), literal(_where(time.frame)), _percent(time.total_us, shown.seen_us),
            _percent(time.self_us, shown.seen_us), f"{per_execution_ms(time.total_us, n):.2f}",
        )
    return table


def _lines_table(shown: Shown) -> Table:
    table = Table("the task's own line", "share", "ms/exec", title="hot lines")
    for line in shown.lines:
        table.add_row(
            literal(f"{line.path}:{line.line}"), _percent(line.us, shown.seen_us),
            f"{per_execution_ms(line.us, shown.profile.executions):.2f}",
        )
    return table


def _callers_table(shown: Shown) -> Table:
    assert shown.callee is not None
    callee, n = shown.callee, shown.profile.executions
    title = Text.assemble(
        "callers of ", literal(_named(callee.frame)),
        f": {_percent(callee.total_us, shown.seen_us)} of the task, "
        f"{per_execution_ms(callee.total_us, n):.2f} ms per execution",
    )
    table = Table("caller", "file:line", "share of it", "share of task", "ms/exec", title=title)
    for caller in shown.callers:
        frame = None if caller.label == ENTRY else Frame.parse(caller.label)
        table.add_row(
            literal(ENTRY if frame is None else frame.name), literal("" if frame is None else _where(frame)),
            _percent(caller.us, callee.total_us), _percent(caller.us, shown.seen_us),
            f"{per_execution_ms(caller.us, n):.2f}",
        )
    return table


def _memory_sites(shown: Shown, console: Console) -> None:
    memory = shown.memory
    if not memory.sites_recorded:
        console.print(MEMORY_HINT, highlight=False)
        return
    table = Table("allocation site", "held", "per execution", title="allocations still held")
    for site in memory.sites:
        table.add_row(
            literal(f"{site.path}:{site.line}"), human_bytes(site.bytes),
            human_bytes(site.bytes / max(memory.executions, 1)),
        )
    console.print(table)


def _where(frame: Frame) -> str:
    """``path:line`` with an installed package's or the stdlib's directory left out
    (``redis/connection.py:270``): the part that tells one file from another.
    ``--json`` keeps whole paths."""
    if frame.path == "?":
        return ""  # the task itself, credited with stacks of plumbing only
    path = frame.path.replace("\\", "/")
    for prefix in LIBRARY_PREFIXES:  # as workers keep them
        if path.startswith(prefix):
            return f"{path[len(prefix):]}:{frame.line}"
    for mark in ("/site-packages/", "/dist-packages/"):
        if mark in path:
            path = path.rpartition(mark)[2]
            break
    else:
        path = _STDLIB.sub("", path)
    return f"{path}:{frame.line}"


def _named(frame: Frame) -> str:
    return f"{frame.name} ({_where(frame)})"


def _percent(part: int, whole: int) -> str:
    return f"{share(part, whole):.1%}"


def _ms(ms: float) -> str:
    return f"{ms:.2f} ms"


def _signed_bytes(count: float) -> str:
    return ("+" if count >= 0 else "") + human_bytes(count)


def human_bytes(count: float) -> str:
    """``1.5 MiB``, ``-12 KiB``: bytes as a reader takes them in."""
    size, unit = abs(count), "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    sign = "-" if count < 0 else ""
    return f"{sign}{size:.0f} B" if unit == "B" else f"{sign}{size:.1f} {unit}"
