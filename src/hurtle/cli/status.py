"""``hurtle status``: what waits where and which workers run what (``--watch``: live);
``hurtle status task ID``: one task."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import NoReturn

import click

from hurtle.cli.common import (
    Where,
    app_option,
    broker_option,
    fail,
    on_connection,
    open_connection,
    where_to_read,
)
from hurtle.cli.status_history import not_kept
from hurtle.cli.status_task_show import print_report, unknown_line
from hurtle.cli.status_task_tree import print_flow
from hurtle.cli.status_view import print_view, read_snapshot, snapshot_json
from hurtle.cli.status_watch import DEFAULT_INTERVAL, watch
from hurtle.cli.status_workers import not_visible, read_registry
from hurtle.client import Connection
from hurtle.envelope import DecodeError
from hurtle.observe.task_report import read_report, report_json

#: ``status task`` when nothing is known of the id; 2 stays a usage error, as in ``dlq requeue``.
EXIT_UNKNOWN_TASK = 1

@click.group(invoke_without_command=True)
@app_option
@broker_option
@click.option("-q", "--queues", help="Comma-separated queues. Default: every known queue.")
@click.option(
    "--json", "as_json", is_flag=True,
    help='Print one JSON object: {"queues": [...], "workers": [...], "tasks": [...], "deploys": [...]}'
    " (workers, tasks, deploys: null where the app's stores keep none).",
)
@click.option("--watch", is_flag=True, help="Redraw the tables in place until Ctrl-C.")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
    help=f"Seconds between refreshes with --watch. Default: {DEFAULT_INTERVAL:g}.",
)
@click.pass_context
def status(
    ctx: click.Context, app_spec: str | None, broker_url: str | None, queues: str | None,
    as_json: bool, watch: bool, interval: float | None,
) -> None:
    """Queue depths: ready, how long the oldest ready message has waited, delayed,
    in flight (leased by a worker) and dead; then the worker processes alive now
    (the worker registry): busy slots, memory, uptime and the tasks they run;
    then each task's rate, failures, queue wait and run time over the last 5
    minutes and the last hour (the task history), and the latest deploy.

    "?" marks a figure the broker cannot know (in flight and oldest on RabbitMQ,
    in/min where the broker does not count what a queue takes in).
    `hurtle status task ID` shows one task."""
    if ctx.invoked_subcommand is not None:
        for given, name in ((queues, "-q/--queues"), (watch, "--watch"), (interval, "--interval")):
            if given:
                fail(f"{name} is for the queue view, not for `status {ctx.invoked_subcommand}`")
        return
    if watch and as_json:
        fail("--watch redraws tables for people; --json prints once: choose one")
    if interval is not None and not watch:
        fail("--interval goes with --watch")
    where = where_to_read(app_spec, broker_url)
    connection = open_connection(where)
    names = [q for q in queues.split(",") if q] if queues else None
    if watch:
        _watch(where, connection, names, interval or DEFAULT_INTERVAL)
        return
    snapshot = on_connection(connection, lambda c: read_snapshot(c, where, names))
    if as_json:
        click.echo(json.dumps(snapshot_json(snapshot)))
        if snapshot.workers is None:
            click.echo(not_visible(where), err=True)
        if snapshot.history is None:
            click.echo(not_kept(where), err=True)
        return
    print_view(snapshot)


def _watch(where: Where, first: Connection, names: list[str] | None, interval: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends: quietly, exit code 0
        asyncio.run(watch(first, where, names, interval))


@status.command("task")
@click.argument("task_id")
@app_option
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, values and tracebacks whole.")
@click.pass_context
def task(
    ctx: click.Context, task_id: str, app_spec: str | None, broker_url: str | None, as_json: bool
) -> None:
    """One task: its state (queued, running, succeeded, failed, cancelled or unknown),
    its progress when it reports some,
    attempts, the worker that ran it (or runs it, from the worker registry),
    its times, and its result or error and traceback.

    Exit code 1 when nothing is known of TASK_ID. -A, --broker and --json may
    also come before `task`."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    if not task_id.strip():
        fail("TASK_ID is empty: give the id that send() returned (handle.id)")
    where = where_to_read(app_spec or parent.get("app_spec"), broker_url or parent.get("broker_url"))
    connection = open_connection(where)
    try:
        report = on_connection(connection, lambda c: read_report(c, lambda: read_registry(where), task_id))
    except DecodeError as exc:  # a result record another program wrote
        _unknown(f"task {task_id}: {exc}")
    if as_json or parent.get("as_json"):
        click.echo(json.dumps(report_json(report), default=repr))
    elif report.known:
        print_report(report, None if report.registry_visible else not_visible(where))
        if report.flow is not None:
            print_flow(report.flow)
    if not report.known:
        _unknown(unknown_line(report, where))


def _unknown(line: str) -> NoReturn:
    click.echo(f"hurtle status task: {line}", err=True)
    raise click.exceptions.Exit(EXIT_UNKNOWN_TASK)
