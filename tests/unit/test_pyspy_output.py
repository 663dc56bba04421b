"""Reading what py-spy prints: its refusals, and the task a dumped thread runs.

The texts here are py-spy 0.4's own output, captured from real runs.
"""

from __future__ import annotations

import pytest

from hurtle.cli.profile_live import running_task
from hurtle.profiling.pyspy import failure_message, is_denied, parse_dump
from hurtle.profiling.worker_processes import worker_arguments

#: As an unprivileged user.
DENIED_AS_USER = (
    "Permission Denied: Try running again with elevated permissions by going 'sudo env \"PATH=$PATH\" !!'\n"
)
#: As root in a container without CAP_SYS_PTRACE.
DENIED_WITHOUT_CAPABILITY = """\
Error: Failed to get process executable name. Check that the process is running.

Caused by:
    0: Permission denied (os error 13)
    1: Permission denied (os error 13)

Stack backtrace:
   0: <E as anyhow::context::ext::StdError>::ext_context
   1: py_spy::python_process_info::PythonProcessInfo::new
"""
NOT_PYTHON = """Error: No python processes found in process 7570 or any of its subprocesses

Stack backtrace:
   0: anyhow::error::<impl anyhow::Error>::msg
"""

#: One thread of `py-spy dump --json --locals` on a worker running a sync task (frames trimmed).
SYNC_TASK_THREAD = """[{"pid": 10567, "thread_id": 139921488115392, "thread_name": "hurtle-task-0",
"os_thread_id": 10649, "active": true, "owns_gil": true, "frames": [
{"name": "spin_here", "filename": "/tmp/app/spinapp.py", "module": null, "short_filename": "spinapp.py",
 "line": 8, "locals": [{"name": "seconds", "addr": 1, "arg": true, "repr": "120"}],
 "is_entry": false, "is_shim_entry": false},
{"name": "spin", "filename": "/tmp/app/spinapp.py", "module": null, "short_filename": "spinapp.py",
 "line": 14, "locals": [{"name": "seconds", "addr": 2, "arg": true, "repr": "120"}],
 "is_entry": true, "is_shim_entry": false},
{"name": "_run_call", "filename": "/venv/lib/hurtle/worker/executors.py", "module": null,
 "short_filename": "hurtle/worker/executors.py", "line": 186, "locals": [
  {"name": "call", "addr": 3, "arg": true, "repr": "<SyncCall at 0x7f4203c36740>"},
  {"name": "job", "addr": 4, "arg": false, "repr": "<Job at 0x7f4203cbc940>"},
  {"name": "task_name", "addr": 5, "arg": false, "repr": "\\"spinapp.spin\\""},
  {"name": "task_id", "addr": 6, "arg": false, "repr": "\\"dd4a48e7cb68233133649db5223ea681\\""}],
 "is_entry": true, "is_shim_entry": false}]}]"""


@pytest.mark.parametrize("error_text", [DENIED_AS_USER, DENIED_WITHOUT_CAPABILITY])
def test_a_ptrace_refusal_is_one_line_that_says_how_to_allow_it(error_text: str) -> None:
    assert is_denied(error_text)
    message = failure_message(4242, error_text)
    assert "\n" not in message
    assert "not permitted to read process 4242" in message
    assert "--cap-add SYS_PTRACE" in message
    assert "securityContext.capabilities.add: [SYS_PTRACE]" in message


def test_another_failure_is_py_spys_first_line() -> None:
    assert not is_denied(NOT_PYTHON)
    assert failure_message(7570, NOT_PYTHON) == (
        "py-spy failed on process 7570: No python processes found in process 7570 or any of its subprocesses"
    )


def test_a_dumped_thread_names_the_task_it_runs_and_lists_frames_innermost_first() -> None:
    (thread,) = parse_dump(SYNC_TASK_THREAD)
    assert running_task(thread) == "spinapp.spin[dd4a48e7cb68233133649db5223ea681]"
    assert (thread.thread_id, thread.name) == (10649, "hurtle-task-0")
    assert thread.active and thread.owns_gil
    assert [str(frame) for frame in thread.frames[:2]] == ["spin_here (spinapp.py:8)", "spin (spinapp.py:14)"]


def test_a_thread_without_a_task_frame_runs_no_task() -> None:
    (thread,) = parse_dump(SYNC_TASK_THREAD.replace('"_run_call"', '"_run_other"'))
    assert running_task(thread) is None


@pytest.mark.parametrize(("argv", "arguments"), [
    (("/venv/bin/python", "/venv/bin/hurtle", "worker", "tasks", "-p", "2"), ("tasks", "-p", "2")),
    (("python3", "-m", "hurtle", "worker", "tasks:app"), ("tasks:app",)),
    (("hurtle", "worker"), ()),
    (("/venv/bin/hurtle", "profile", "worker", "-A", "tasks"), None),
    (("python3", "-m", "pytest", "-k", "worker"), None),
])
def test_only_hurtle_worker_command_lines_are_workers(
    argv: tuple[str, ...], arguments: tuple[str, ...] | None
) -> None:
    assert worker_arguments(argv) == arguments
