"""The supervisor: preload once, fork long-lived workers, replace the ones that end.

Seed 000: RQ forked a fresh process per job and re-ran a 50 ms setup each time
(102 s for 1,000 jobs; 24.6 s once the setup ran before forking). Here the app
is imported and ``on_preload`` hooks run once, in this process, before any
fork; each child keeps running tasks until it is told to stop or recycles.

A child that dies is replaced; its leased messages come back (after the
visibility timeout, or on RabbitMQ when the dead child's connection closes) and
count a delivery, so a task that kills its process is
dead-lettered after ``max_deliveries`` instead of crash-looping the fleet.
Signal handlers only set flags and wake the loop through a pipe.

With ``--metrics-port`` each child also gets a pipe of its own, made before its
fork, to report its figures on; the loop reads them all (``observe/metrics``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hurtle.app import App
from hurtle.worker.config import EXIT_BROKER_LOST, EXIT_OK, EXIT_RECYCLE, WorkerConfig
from hurtle.worker.cpu_pin import cpu_plan, pin
from hurtle.worker.process import EXIT_HOOK_FAILED, run_process
from hurtle.worker.startup import start_block, start_warnings
from hurtle.worker.watchdog import Heartbeats

if TYPE_CHECKING:
    from hurtle.observe.metrics.server import MetricsServer

log = logging.getLogger("hurtle.supervisor")

_RESPAWN_DELAY_MAX = 10.0  # seconds: back off from a child that dies at once, again and again
_QUICK_DEATH = 2.0  # seconds: a child that lived less than this "died at once"
_STALL_FLOOR = 5.0  # seconds: never kill for a shorter stall, whatever the visibility timeout


@dataclass
class Child:
    slot: int
    pid: int
    started: float


class Supervisor:
    def __init__(
        self, app: App, config: WorkerConfig, processes: int, *, stall_limit: float | None = None,
        metrics: MetricsServer | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.processes = processes
        #: The CPU of each slot's process, or None: not pinned (``cpu_pin.py``).
        self.cpus = cpu_plan(config.cpu_pin, processes)
        #: Kill a process whose event loop has not turned for this long. Where leases
        #: expire (``Broker.leases_expire``) its tasks are being redelivered by then; on
        #: RabbitMQ they stay leased while its connection lives, and the kill gives them back.
        #: (A task that blocks the loop is interrupted sooner, in the process:
        #: ``loop_watch.block_limit``; this is for what no signal interrupts.)
        default_limit = max(_STALL_FLOOR, app.visibility_timeout)
        self.stall_limit = stall_limit if stall_limit is not None else default_limit
        self.heartbeats = Heartbeats(processes)
        self.children: dict[int, Child] = {}
        #: ``/metrics`` (``--metrics-port``): what the children report, read in the loop.
        self.metrics = metrics
        self._signals = 0
        self._finished_slots: set[int] = set()
        self._quick_deaths: dict[int, int] = {}
        self._respawn_at: dict[int, float] = {}
        self._exit_code = 0
        #: Set by SIGHUP: once every child has finished its tasks, the caller
        #: re-executes the worker so new code is loaded (see cli/worker.py).
        self.reload_requested = False

    def run(self) -> int:
        """Run until signalled (or, with --burst, until every child is done)."""
        for hook in self.app.preload_hooks:
            hook()  # errors surface to the CLI: a broken preload must not fork
        log.info("%s", start_block(self.app, self.config, self.processes))
        for warning in start_warnings(self.app, self.config.queues):
            log.warning("%s", warning)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        os.set_blocking(wake_read, False)
        previous_fd = signal.set_wakeup_fd(wake_write)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        handlers[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select()
        try:
            for slot in range(self.processes):
                self._spawn(slot)
            return self._loop(wake_read)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_read)
            os.close(wake_write)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals += 1
        self.reload_requested = False  # a stop signal wins over a pending reload

    def _on_hup(self, signum: int, frame: object) -> None:
        if self._signals == 0:
            self.reload_requested = True
            self._signals += 1

    def _loop(self, wake_read: int) -> int:
        forwarded = 0
        while True:
            self._reap()
            if self._signals > forwarded:
                forwarded = self._signals
                self._forward(forwarded)
            if self._signals == 0:
                self._kill_stalled()
                self._respawn_due()
            if not self.children and (self._signals or self._all_finished()):
                break
            reports = self.metrics.inbox.fds() if self.metrics is not None else []
            ready, _, _ = select.select([wake_read, *reports], [], [], 0.5)
            if self.metrics is not None:
                self.metrics.inbox.read(ready)
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        log.info("supervisor %d stopped", os.getpid())
        return self._exit_code

    def _forward(self, count: int) -> None:
        if count == 1:
            doing = "reloading" if self.reload_requested else "stopping"
            log.info("%s: finishing tasks in flight (up to %.0fs); signal again to stop now",
                     doing, self.config.grace)
            sig = signal.SIGTERM
        else:
            log.warning("stopping now: unfinished tasks return after their leases expire")
            sig = signal.SIGKILL
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, sig)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self._count_metrics(child)
                self._on_exit(child, status)

    def _on_exit(self, child: Child, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        lived = time.monotonic() - child.started
        if self._signals:
            return
        if code == EXIT_OK and self.config.burst:
            self._finished_slots.add(child.slot)
            return
        if code == EXIT_RECYCLE:
            log.info("worker %d recycled after %.1fs; starting a new one", child.pid, lived)
            self._spawn(child.slot)
            return
        if code in (EXIT_HOOK_FAILED, EXIT_BROKER_LOST):
            # Respawning cannot fix a broken on_worker_start or a broker that is
            # gone: stop and exit non-zero so whatever runs us restarts us.
            why = "on_worker_start failed" if code == EXIT_HOOK_FAILED else "the broker is unreachable"
            log.error("worker %d stopped (%s); stopping every worker", child.pid, why)
            self._exit_code = code
            self._signals += 1  # the loop forwards it: one SIGTERM to the others
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log.error("worker %d %s after %.1fs; replacing it", child.pid, how, lived)
        quick = self._quick_deaths.get(child.slot, 0) + 1 if lived < _QUICK_DEATH else 0
        self._quick_deaths[child.slot] = quick
        delay = min(_RESPAWN_DELAY_MAX, 0.1 * 2**quick) if quick else 0.0
        self._respawn_at[child.slot] = time.monotonic() + delay

    def _count_metrics(self, child: Child) -> None:
        """Before ``child``'s slot is reused: every report it wrote, and no gauge of a gone process."""
        if self.metrics is not None:
            self.metrics.inbox.drain(child.pid)
            self.metrics.totals.forget_slot(child.slot)
            self.metrics.totals.set_processes(len(self.children))

    def _kill_stalled(self) -> None:
        for child in self.children.values():
            stalled = self.heartbeats.age(child.slot)
            if stalled > self.stall_limit:
                log.error(
                    "worker %d: its event loop has not run for %.0fs (held by a call that could not"
                    " be interrupted, such as C code holding the GIL); killing it, its tasks will be"
                    " delivered again",
                    child.pid, stalled,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                self.heartbeats.stamp(child.slot)  # one kill per stall

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for slot, at in list(self._respawn_at.items()):
            if at <= now:
                del self._respawn_at[slot]
                self._spawn(slot)

    def _all_finished(self) -> bool:
        return len(self._finished_slots) >= self.processes and not self._respawn_at

    def _spawn(self, slot: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.heartbeats.stamp(slot)  # start-up counts as alive
        # What is imported so far lives as long as the process: out of the
        # collector's sight, a child's collections neither walk it nor write to
        # its pages (copy-on-write keeps it shared), and this process's exit
        # skips a full collection of it (about 0.1 s with the Redis client).
        config, read_fd = self.config, -1
        if self.metrics is not None:
            read_fd, write_fd = self.metrics.inbox.open()
            config = dataclasses.replace(config, metrics_fd=write_fd)
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            if self.metrics is not None:
                self.metrics.close_in_child()
            os._exit(self._child_main(slot, config))
        self.children[pid] = Child(slot, pid, time.monotonic())
        if self.metrics is not None and config.metrics_fd is not None:
            os.close(config.metrics_fd)  # the child's alone: its exit is the pipe's end
            self.metrics.inbox.attach(read_fd, pid, slot)
            self.metrics.totals.set_processes(len(self.children))

    def _child_main(self, slot: int, config: WorkerConfig) -> int:
        code = 1
        try:
            if self.cpus is not None:  # before any thread starts: they inherit the CPU
                pin(self.cpus[slot])
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = run_process(self.app, config, heartbeats=self.heartbeats, slot=slot)
        except BaseException:
            log.exception("worker process crashed")
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        return code
