"""``hurtle worker MODULE[:ATTR]``: run tasks."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from hurtle.app import App
from hurtle.brokers import Broker, from_url
from hurtle.cli.common import check_reachable, fail, load_app, run
from hurtle.errors import HurtleError
from hurtle.loops import LOOPS, uvloop_installed
from hurtle.observe.registry import HEARTBEAT_EVERY
from hurtle.schedule.limits import check_limits_kept
from hurtle.settings import ENV_APP, ENV_BROKER
from hurtle.worker.config import WorkerConfig
from hurtle.worker.cpu_pin import CHOICES as CPU_PIN_CHOICES
from hurtle.worker.cpu_pin import can_pin
from hurtle.worker.priorities import QueueSpec, QueueSpecError
from hurtle.worker.supervisor import Supervisor
from hurtle.worker.thread_tuner import AUTO_MAX, AUTO_START

if TYPE_CHECKING:
    from hurtle.observe.metrics.server import MetricsServer
    from hurtle.profiling.profiler import ProfileConfig


@click.command()
@click.argument("app_spec", metavar="MODULE[:ATTR]", envvar=ENV_APP)
@click.option("-q", "--queues", help="Comma-separated queues to consume, each with an optional :WEIGHT"
              " (high:5,low:1: fetches shared in proportion). Default: every queue a task uses.")
@click.option("--strict", is_flag=True,
              help="Take from the queues in the order given: always the first with a ready message.")
@click.option("-p", "--processes", type=click.IntRange(min=1), help="Worker processes. Default: CPU count.")
@click.option("-t", "--threads", metavar="N|auto", default="auto", show_default=True,
              help="Threads per process for sync tasks: auto grows and shrinks the pool with measured"
              " throughput (8 to start); N keeps N; 1 = one task at a time, hard time limits.")
@click.option("--max-threads", type=click.IntRange(min=2), metavar="N",
              help="With -t auto: the most threads a process's pool grows to.  [default: 64]")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=100, show_default=True,
              help="Async tasks at once per process.")
@click.option("--loop", type=click.Choice(LOOPS), default="auto", show_default=True,
              help="Each process's event loop. auto: uvloop (when installed) where async tasks run,"
                   " asyncio's own where every task is sync (uvloop takes the GIL back for each"
                   " callback, and busy threads make it wait).")
@click.option("--cpu-pin", type=click.Choice(CPU_PIN_CHOICES), default="auto", show_default=True,
              help="Each process on a CPU of its own, so its threads hand the GIL over on one core."
                   " auto: when the processes fill the CPUs evenly (-p a multiple of them); on: always,"
                   " in turn; off: never.")
@click.option("--burst", is_flag=True, help="Exit 0 once every queue is empty and nothing is in flight.")
@click.option("--burst-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="With --burst: stop after SECONDS even if tasks are still queued or delayed"
              " (they stay in the broker; exit 1).")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), help="Replace a process after N tasks.")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to finish tasks in flight after SIGTERM.")
@click.option("--max-disconnect", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds without the broker before the worker exits non-zero (69).")
@click.option("--registry-interval", type=click.FloatRange(min=0), default=HEARTBEAT_EVERY, show_default=True,
              metavar="SECONDS",
              help="Seconds between each process's record in the worker registry (`hurtle status`);"
              " a process silent for 3 intervals drops out. 0: no records.")
@click.option("--schedule-lease", type=click.FloatRange(min=0), default=15.0, show_default=True,
              metavar="SECONDS",
              help="Seconds the scheduler's lease lasts unless renewed: a worker that dies while it runs"
              " the app's periodic tasks delays them at most this long. 0: this worker runs no scheduler.")
@click.option("--broker", "broker_url", help="Broker URL; overrides the app's.")
@click.option("--profile", "profile_spec", metavar="all|TASK,TASK",
              help="Profile these tasks' executions (see `hurtle profile show`).")
@click.option("--profile-hz", type=click.FloatRange(min=1, max=1000), default=100.0, show_default=True,
              help="Samples per second of each profiled execution.")
@click.option("--profile-sample", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0,
              show_default=True, help="The fraction of executions profiled.")
@click.option("--profile-memory", is_flag=True,
              help="Also trace allocations (tracemalloc; slow): where profiled tasks hold memory.")
@click.option("--profile-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Keep profiles in files in DIR (for a broker that keeps nothing, such as RabbitMQ).")
@click.option("--metrics-port", type=click.IntRange(min=1, max=65535), metavar="PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics from the supervisor"
              " (pip install 'hurtle[metrics]').")
@click.option("--metrics-host", metavar="HOST",
              help="With --metrics-port: the address to listen on.  [default: 127.0.0.1]")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def worker(
    app_spec: str,
    queues: str | None,
    strict: bool,
    processes: int | None,
    threads: str,
    max_threads: int | None,
    concurrency: int,
    loop: str,
    cpu_pin: str,
    burst: bool,
    burst_timeout: float | None,
    max_tasks_per_child: int | None,
    grace: float,
    max_disconnect: float,
    registry_interval: float,
    schedule_lease: float,
    broker_url: str | None,
    profile_spec: str | None,
    profile_hz: float,
    profile_sample: float,
    profile_memory: bool,
    profile_dir: str | None,
    metrics_port: int | None,
    metrics_host: str | None,
    log_level: str,
) -> None:
    """Run the tasks of the app MODULE[:ATTR] (imported from the current directory;
    default: $HURTLE_APP)."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
    )
    try:
        spec = None if queues is None else QueueSpec.parse(queues, strict=strict)
    except QueueSpecError as exc:
        fail(f"--queues: {exc}")
    if strict and spec is None:
        fail("--strict takes the queues in the order -q gives them: pass -q too")
    chosen = None if spec is None else list(spec.queues)
    if burst_timeout is not None and not burst:
        fail("--burst-timeout bounds a --burst run: pass --burst too")
    fixed_threads = _threads(threads)
    if max_threads is not None and fixed_threads is not None:
        fail("--max-threads caps -t auto: a fixed -t N keeps N threads")
    if metrics_host is not None and metrics_port is None:
        fail("--metrics-host: pass --metrics-port too")
    if cpu_pin == "on" and not can_pin():
        fail("--cpu-pin on: this platform cannot pin a process to a CPU (use auto or off)")
    if loop == "uvloop" and not uvloop_installed():
        fail("--loop uvloop: uvloop is not installed: pip install 'hurtle[uvloop]'")
    if broker_url:
        os.environ[ENV_BROKER] = broker_url
    app = load_app(app_spec)
    if broker_url:
        app.broker_url = broker_url
    try:
        broker = from_url(app.broker_url, visibility_timeout=app.visibility_timeout)
        for queue in chosen or app.queues():  # the broker may be --broker's, not the app's
            app.check_queue(queue)
        if app.results_url:
            from_url(app.results_url)  # a bad one is one line now, not a crash in every process
        check_limits_kept(app)  # limited tasks must not run unlimited
    except HurtleError as exc:
        fail(str(exc))
    if not broker.shared_across_processes:
        fail(f"the broker {app.broker_url} lives in one process: no other process can send this"
             " worker tasks (use sqlite:///path.db, redis:// or amqp://)")
    run(check_reachable(broker))
    profile = _profile_config(app, profile_spec, profile_hz, profile_sample, profile_memory, profile_dir)
    config = WorkerConfig(
        queues=chosen or app.queues(),
        weights=None if spec is None else spec.weights,
        strict=strict,
        concurrency=concurrency,
        threads=fixed_threads or min(AUTO_START, max_threads or AUTO_MAX),
        auto_threads=fixed_threads is None,
        max_threads=max_threads or AUTO_MAX,
        loop=loop,
        cpu_pin=cpu_pin,
        burst=burst,
        burst_timeout=burst_timeout,
        max_tasks_per_child=max_tasks_per_child,
        grace=grace,
        max_disconnect=max_disconnect,
        profile=profile,
        registry_interval=registry_interval,
        schedule_lease=schedule_lease,
    )
    metrics = _metrics_server(metrics_host, metrics_port)
    supervisor = Supervisor(app, config, processes or os.cpu_count() or 1, metrics=metrics)
    try:
        code = supervisor.run()
    finally:
        if metrics is not None:
            metrics.close()
    if supervisor.reload_requested:
        # SIGHUP: every task in flight has finished; start afresh, same pid, new code.
        logging.getLogger("hurtle.supervisor").info("reloading: starting again with fresh code")
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "hurtle", *sys.argv[1:]])
    if code == 0 and burst_timeout is not None:
        left = run(_pending(from_url(app.broker_url), config.queues))
        if left:
            click.echo(f"hurtle worker: {left} task(s) still queued or delayed after the"
                       f" {burst_timeout:g}s burst timeout", err=True)
            code = 1
    raise SystemExit(code)


def _metrics_server(host: str | None, port: int | None) -> MetricsServer | None:
    """``/metrics``, listening before any fork: a port in use is one line now."""
    if port is None:
        return None
    try:
        from hurtle.observe.metrics.server import DEFAULT_HOST, MetricsServer
    except ImportError:
        fail("--metrics-port needs prometheus-client: pip install 'hurtle[metrics]'")
    host = host or DEFAULT_HOST
    try:
        server = MetricsServer(host, port)
    except OSError as exc:
        fail(f"--metrics-port: cannot listen on {host}:{port} ({exc.strerror or exc})")
    logging.getLogger("hurtle.supervisor").info("metrics at http://%s/metrics", _host_port(host, server.port))
    return server


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _profile_config(
    app: App, spec: str | None, hz: float, sample: float, memory: bool, directory: str | None
) -> ProfileConfig | None:
    """What to profile; None when no --profile option was given (tasks declared
    with ``profile=True`` are profiled anyway). Checks now, before any fork, that
    the profiles have somewhere to go."""
    from hurtle.profiling.profiler import (
        ProfileConfig,  # here: a worker that profiles nothing never imports it
    )
    from hurtle.tally_source import open_tallies

    if spec is None:
        given = [name for name, value in (("--profile-memory", memory), ("--profile-dir", directory),
                                          ("--profile-hz", hz != 100.0), ("--profile-sample", sample != 1.0))
                 if value]
        if given and not any(task.opts.profile for task in app.tasks.values()):
            fail(f"{given[0]} needs --profile all|TASK,TASK (or a task with profile=True)")
    # Without --profile, only the tasks declared with profile=True (profiled_tasks adds them).
    tasks: frozenset[str] | None = frozenset() if spec is None else None
    if spec is not None and spec.strip() != "all":
        tasks = frozenset(name.strip() for name in spec.split(",") if name.strip())
        unknown = sorted(tasks - set(app.tasks))
        if not tasks or unknown:
            known = ", ".join(sorted(app.tasks)) or "none"
            fail(f"--profile: no task named {', '.join(unknown) or repr(spec)} (tasks: {known})")
    config = ProfileConfig(tasks=tasks, hz=hz, sample=sample, memory=memory, directory=directory)
    if spec is not None or any(task.opts.profile for task in app.tasks.values()):
        try:
            store = open_tallies(app.broker_url, app.results_url, directory)
        except HurtleError as exc:
            fail(str(exc))
        run(store.close())
    return config if spec is not None or directory or memory else None


async def _pending(broker: Broker, queues: Sequence[str]) -> int:
    try:
        return sum(s.pending for s in await broker.stats(queues))
    finally:
        await broker.close()


def _threads(value: str) -> int | None:
    """``-t``'s value: a fixed pool size, or None for ``auto``."""
    if value.strip().lower() == "auto":
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        fail(f"-t/--threads: expected auto or a whole number >= 1, not {value!r}")
    return threads
