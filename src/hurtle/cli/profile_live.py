"""``hurtle profile worker`` and ``hurtle profile dump``: look into running workers with py-spy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from hurtle.cli.common import fail
from hurtle.profiling import pyspy
from hurtle.profiling.pyspy import PySpyError, StackFrame, ThreadStack
from hurtle.profiling.worker_processes import children, command_line, forked_by_its_supervisor, supervisors
from hurtle.settings import ENV_APP

T = TypeVar("T")

#: The frames that run a task's code, by function and file: their ``task_name``
#: and ``task_id`` locals name the task (``run_job`` on the loop, ``_run_call`` on
#: a thread).
_TASK_FRAMES = {("run_job", "loop_watch.py"), ("_run_call", "executors.py")}

pid_option = click.option("--pid", type=click.IntRange(min=1), help="The worker supervisor's process id.")
app_option = click.option(
    "-A", "--app", "app_spec", metavar="MODULE[:ATTR]", envvar=ENV_APP,
    help=f"Find the supervisor of the `hurtle worker` running this app on this machine. Default: ${ENV_APP}.",
)


def _pyspy(action: Callable[[], T]) -> T:
    try:
        return action()
    except PySpyError as exc:
        fail(str(exc))


def supervisor_pid(pid: int | None, app_spec: str | None) -> int:
    """``--pid``, else the one supervisor running ``-A``'s app here; one line and exit 2 otherwise."""
    if pid is not None:
        return pid
    if not app_spec:
        fail("say which worker: --pid PID, or -A MODULE[:ATTR] to find it")
    found = supervisors(app_spec)
    if not found:
        fail(f"no `hurtle worker` running {app_spec} on this machine")
    if len(found) > 1:
        _several(app_spec, [(p.pid, p.command) for p in found])
    return found[0].pid


def readable_supervisor(pid: int | None, app_spec: str | None) -> int:
    """The supervisor's pid, once py-spy is found and may read it: a refusal is
    one line before anything else is printed."""
    target = supervisor_pid(pid, app_spec)
    _pyspy(pyspy.executable)
    _pyspy(lambda: pyspy.check_readable(target))
    return target


def _several(app_spec: str, found: list[tuple[int, str]]) -> NoReturn:
    for pid, command in found:
        click.echo(f"{pid}  {command}", err=True)
    fail(f"{len(found)} workers run {app_spec} here (listed above): choose one with --pid")


def output_format(path: Path) -> str:
    for suffix, file_format in pyspy.RECORD_FORMATS.items():
        if path.name.endswith(suffix):
            return file_format
    fail(f"cannot tell the format of {path.name!r}: name it *{', *'.join(pyspy.RECORD_FORMATS)}")


@click.command("worker")
@pid_option
@app_option
@click.option("--duration", type=click.IntRange(min=1), default=10, show_default=True, metavar="SECONDS",
              help="How long to sample.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write; its suffix picks the format: .svg (flame graph),"
                   " .speedscope.json or .json (speedscope.app), .txt (folded stacks).")
def worker_command(pid: int | None, app_spec: str | None, duration: int, output: Path) -> None:
    """Sample a running worker, its supervisor and every process, with py-spy."""
    file_format = output_format(output)
    target = readable_supervisor(pid, app_spec)
    click.echo(f"sampling worker {target} and its processes for {duration} s...", err=True)
    _pyspy(lambda: pyspy.record(target, duration, output, file_format))
    click.echo(f"wrote {output}")


@click.command("dump")
@pid_option
@app_option
def dump_command(pid: int | None, app_spec: str | None) -> None:
    """Print the stacks of a worker's every process now, and the task each thread runs:
    for a worker that seems stuck. Stacks read innermost frame last, as in a traceback."""
    target = readable_supervisor(pid, app_spec)
    if forked_by_its_supervisor(target):  # --pid named one process of a worker: that one alone
        processes = [(target, "worker")]
    else:
        processes = [(target, "supervisor"), *((child, "worker") for child in children(target))]
    for number, (process, role) in enumerate(processes):
        if number:
            click.echo()
        click.echo(f"process {process} ({role}): {command_line(process)}")
        try:
            threads = pyspy.dump(process)
        except PySpyError as exc:
            if number == 0 or exc.denied:
                fail(str(exc))
            click.echo(f"  {exc}")  # a process replaced meanwhile: the others still say something
            continue
        for thread in threads:
            _print_thread(thread)


def _print_thread(thread: ThreadStack) -> None:
    state = ("active" if thread.active else "idle") + (", holds the GIL" if thread.owns_gil else "")
    running = running_task(thread)
    task = f", running {running}" if running else ""
    click.echo(f"  thread {thread.thread_id} {thread.name!r} ({state}){task}")
    for frame in reversed(thread.frames):
        click.echo(f"    {frame}")


def running_task(thread: ThreadStack) -> str | None:
    """``name[id]`` of the task whose code runs on ``thread``, if any (the innermost)."""
    for frame in thread.frames:
        if _is_task_frame(frame):
            name = _unquoted(frame.locals.get("task_name", ""))
            if name:
                task_id = _unquoted(frame.locals.get("task_id", ""))
                return f"{name}[{task_id}]" if task_id else name
    return None


def _is_task_frame(frame: StackFrame) -> bool:
    return any(frame.function == function and frame.file.endswith(file) for function, file in _TASK_FRAMES)


def _unquoted(text: str) -> str:
    """A str local as py-spy shows it, in double quotes, without them."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
