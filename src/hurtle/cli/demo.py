"""``hurtle demo``: the README's first command, with no server to install.

It does what a user would: send a few thousand tasks to an embedded SQLite
broker in a fresh temporary directory, run ``hurtle worker --burst`` on them as
a separate process (the real worker, not an in-process imitation), follow its
progress through the broker, and summarise the stored results.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from hurtle.brokers import Broker, from_url
from hurtle.cli.common import fail, run
from hurtle.demo import hotspot, tasks
from hurtle.demo.report import Summary, collect, render
from hurtle.demo.tasks import QUEUE
from hurtle.demo.workload import MIN_TASKS, Plan, Sent, send
from hurtle.errors import HurtleError
from hurtle.settings import ENV_BROKER, ENV_RESULTS
from hurtle.urls import SecretURL

EXIT_DEMO_FAILED = 1
POLL_INTERVAL = 0.2  # seconds between progress polls: cheap for the broker, smooth enough to watch
STALL_LIMIT = 30.0  # seconds without one task finishing before the demo gives up on the worker
STOP_GRACE = 5.0  # seconds a stopped worker gets before it is killed
LOG_TAIL = 20  # worker log lines shown when the demo fails
APP_SPEC = f"{tasks.__name__}:app"


class DemoFailed(click.ClickException):
    """The demo ran but did not go to plan: one line, exit code 1."""

    exit_code = EXIT_DEMO_FAILED


@dataclass
class DemoRun:
    """One demo run's settings and where it keeps its files."""

    plan: Plan
    processes: int
    broker_url: SecretURL
    workdir: Path
    #: The worker runs with ``--profile all`` (not on a broker that keeps no profiles).
    profiling: bool = False
    #: The broker outlives the demo (``--keep``, or ``--broker``): its profiles can be read after.
    kept: bool = False

    @property
    def log(self) -> Path:
        return self.workdir / "worker.log"

    @property
    def scratch(self) -> Path:
        """Where sync_crm leaves its first-attempt markers."""
        return self.workdir / "markers"


@click.command()
@click.option("-n", "--tasks", "total", type=click.IntRange(min=MIN_TASKS), default=3000,
              show_default=True, help="How many tasks to send.")
@click.option("-p", "--processes", type=click.IntRange(min=1),
              help="Worker processes. Default: CPU count.")
@click.option("--broker", "broker_url",
              help="Broker URL the worker shares. Default: SQLite in a fresh temporary directory.")
@click.option("--keep", is_flag=True,
              help="Keep the temporary directory (broker, worker log) to look around afterwards.")
def demo(total: int, processes: int | None, broker_url: str | None, keep: bool) -> None:
    """Send a mix of a few thousand tasks, run a real worker on them, show where the time went."""
    if broker_url is not None:
        _check_url(broker_url)
    workdir = Path(tempfile.mkdtemp(prefix="hurtle-demo-"))
    url = SecretURL(broker_url or f"sqlite:///{workdir / 'broker.db'}")
    config = DemoRun(
        plan=Plan(total),
        processes=processes or os.cpu_count() or 1,
        broker_url=url,
        workdir=workdir,
        profiling=hotspot.keeps_profiles(url),
        kept=keep or broker_url is not None,
    )
    console = Console(highlight=False)
    succeeded = interrupted = False
    try:
        run(_demo(config, console))
        succeeded = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # A failed run keeps its files for a post-mortem once there is a worker log to read.
        if keep or (not succeeded and not interrupted and config.log.exists()):
            kept = f"[dim]kept {workdir} (worker.log and, unless --broker, broker.db)[/]"
            console.print(kept, soft_wrap=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep and broker_url is None:
        # soft_wrap: a command to copy must not be broken over lines; a path's brackets are no markup
        for line in ("look around: hurtle status", "             hurtle dlq list"):
            console.print(f"{line} --broker {config.broker_url}", soft_wrap=True, markup=False)


def _check_url(url: str) -> None:
    """One-line errors for a URL no worker in another process could share."""
    try:
        broker = from_url(url)
    except HurtleError as exc:
        fail(str(exc))
    if not broker.shared_across_processes:
        fail("--broker memory:// lives in one process; the demo's worker is another: use sqlite:///path.db")


async def _demo(config: DemoRun, console: Console) -> None:
    broker = from_url(config.broker_url)
    try:
        dead_before = await _dead_before(broker)
        if config.profiling:
            await hotspot.forget(config.broker_url, list(tasks.app.tasks))
        console.print(
            f"[bold]hurtle demo[/]: {config.plan.total:,} tasks, {config.processes} worker process(es)"
        )
        console.print(f"  broker: {config.broker_url}", soft_wrap=True, markup=False)
        sent = await asyncio.to_thread(_send, config)
        console.print(f"  sent {sent.count:,} tasks in {sent.seconds:.2f} s ({sent.batches} round trips)")
        summary = await _run_worker(config, broker, sent, dead_before, console)
    finally:
        await broker.close()
    render(summary, console)
    problems = summary.problems
    if problems:
        raise DemoFailed("; ".join(problems))
    console.print("[green]✓[/] every task that should succeed did; every dead letter was planned.")
    console.print("[dim]next: put @app.task functions in tasks.py and run `hurtle worker tasks`[/]")
    if config.profiling:
        found = await hotspot.hottest(config.broker_url, list(tasks.app.tasks))
        if found is not None:
            console.print(_hotspot_line(found, config), soft_wrap=True, markup=False)


def _hotspot_line(found: hotspot.Hotspot, config: DemoRun) -> str:
    """The top line of the busiest task's profile, and how to read the rest."""
    name = found.task.rsplit(".", 1)[-1]
    show = f"hurtle profile show {name}"
    more = f"see: {ENV_BROKER}={config.broker_url} {show}" if config.kept else f"run with --keep, then {show}"
    line = f", at line {found.line}" if found.line else ""
    return f"where the time went in {name}: {found.share:.0%} in {found.function}{line}; {more}"


async def _dead_before(broker: Broker) -> int:
    """The demo queue's dead letters so far; refuse a queue with work in it already."""
    (stats,) = await broker.stats([QUEUE])
    if stats.pending:
        fail(
            f"queue {QUEUE!r} on {broker.url} already holds {stats.pending:,} message(s):"
            " the demo's counts would be wrong; purge it or use another broker"
        )
    return stats.dead


def _send(config: DemoRun) -> Sent:
    """Send with the sync API, as a user's script would (runs in a thread here)."""
    config.scratch.mkdir()
    tasks.app.broker_url = config.broker_url
    tasks.app.results_url = None  # results stay in the broker, where the demo reads them
    try:
        return send(config.plan, str(config.scratch))
    finally:
        tasks.app.close()


async def _run_worker(
    config: DemoRun, broker: Broker, sent: Sent, dead_before: int, console: Console
) -> Summary:
    profile = ["--profile", "all"] if config.profiling else []
    command = [
        sys.executable, "-m", "hurtle", "worker", APP_SPEC, "--burst",
        "-p", str(config.processes), "--broker", config.broker_url.reveal(), *profile,
    ]
    shown = " ".join([APP_SPEC, "--burst", "-p", str(config.processes), *profile])
    console.print(f"  running: hurtle worker {shown}")
    env = {k: v for k, v in os.environ.items() if k != ENV_RESULTS}
    env[ENV_BROKER] = config.broker_url.reveal()
    with config.log.open("wb") as log:
        started = time.time()
        # Its own session: Ctrl-C here must not reach it; the demo stops it itself.
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        pending = await _follow(proc, broker, config, dead_before, console)
    finally:
        _stop(proc)
    if proc.returncode != 0:
        _show_log_tail(config.log)
        raise DemoFailed(f"the worker {_how_it_ended(proc.returncode)}; its log: {config.log}")
    if pending:
        _show_log_tail(config.log)
        raise DemoFailed(f"the worker exited with {pending:,} task(s) unfinished; its log: {config.log}")
    return await collect(
        broker, config.plan, sent,
        processes=config.processes, worker_started=started, dead_before=dead_before,
    )


async def _follow(
    proc: subprocess.Popen[bytes], broker: Broker, config: DemoRun, dead_before: int, console: Console
) -> int:
    """Show finished tasks until the worker exits; return how many are still pending."""
    total = config.plan.total
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("running", total=total, detail="starting the worker")
        last_finished, last_change = -1, time.monotonic()
        while True:
            (stats,) = await broker.stats([QUEUE])
            finished = total - stats.pending
            dead = stats.dead - dead_before
            running = "?" if stats.in_flight is None else f"{stats.in_flight:,}"
            detail = f"{running} running, {stats.delayed:,} to retry, {dead:,} dead"
            progress.update(bar, completed=finished, detail=detail)
            if proc.poll() is not None:
                progress.update(bar, description="done" if not stats.pending else "stopped")
                return stats.pending
            if finished != last_finished:
                last_finished, last_change = finished, time.monotonic()
            elif time.monotonic() - last_change > STALL_LIMIT:
                _show_log_tail(config.log)
                raise DemoFailed(
                    f"no task finished in {STALL_LIMIT:.0f}s ({finished:,}/{total:,} done);"
                    f" stopped the worker; its log: {config.log}"
                )
            await asyncio.sleep(POLL_INTERVAL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the worker and its children if still running: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the whole group: the supervisor and its workers
        except ProcessLookupError:
            return
        try:
            proc.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _show_log_tail(path: Path) -> None:
    try:
        with path.open(errors="replace") as log:
            tail = deque(log, maxlen=LOG_TAIL)
    except OSError:
        return
    click.echo(f"--- last {len(tail)} lines of {path} ---", err=True)
    click.echo("".join(tail).rstrip(), err=True)
    click.echo("---", err=True)


def _how_it_ended(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
