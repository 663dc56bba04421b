"""``hurtle cancel TASK_ID``: ask the workers to cancel a task (``Handle.cancel``).

It looks at the task first: one that finished has nothing to cancel, and an id
nobody knows is a mistake (exit code 1, as ``hurtle status task``). On a broker
that cannot find a message by id (RabbitMQ) a task not finished yet cannot be
told from an unknown id: the cancel is recorded, and the line says so.
"""

from __future__ import annotations

from typing import NoReturn

import click

from hurtle import settings
from hurtle.cli.common import (
    app_option,
    broker_option,
    fail,
    load_app,
    on_connection,
    open_connection,
    where_to_read,
)
from hurtle.client import Connection
from hurtle.schedule.cancel import request_cancel
from hurtle.task_status import look_at_task

EXIT_NOTHING_TO_CANCEL = 1  # unknown id, or already finished; 2 stays a usage error


@click.command()
@click.argument("task_id")
@app_option
@broker_option
def cancel(task_id: str, app_spec: str | None, broker_url: str | None) -> None:
    """Cancel a task: a queued one never runs, a running async one is cancelled,
    a running sync one sees hurtle.current_task().cancelled become true. Workers
    learn of it within about a second. Exit code 1 when the task is unknown or
    has already finished."""
    if not task_id.strip():
        fail("TASK_ID is empty: give the id that send() returned (handle.id)")
    where = where_to_read(app_spec, broker_url)
    ttl = load_app(app_spec).result_ttl if app_spec else settings.RESULT_TTL
    connection = open_connection(where)
    if connection.records is None:
        scheme = where.broker_url.scheme
        fail(f"cannot cancel: {scheme} keeps no records; give the app a result store that does"
             " (results='redis://...' or HURTLE_RESULTS)")
    line, code = on_connection(connection, lambda c: _cancel(c, task_id, ttl))
    if code:
        _stop(line, code)
    click.echo(line)


async def _cancel(connection: Connection, task_id: str, ttl: float) -> tuple[str, int]:
    look = await look_at_task(connection.broker, connection.results, task_id)
    if look.status in ("succeeded", "failed", "cancelled"):
        line = f"task {task_id} has already {_finished(look.status)}: nothing to cancel"
        return line, EXIT_NOTHING_TO_CANCEL
    locates = connection.broker.locates_messages
    if look.status == "unknown" and locates:
        return (f"no task {task_id} on {connection.broker.url}: not queued, not running, no result stored",
                EXIT_NOTHING_TO_CANCEL)
    assert connection.records is not None
    await request_cancel(connection.records, [task_id], ttl)
    if look.status == "unknown":
        return (f"cancel requested for task {task_id} ({connection.broker.url.scheme} cannot tell whether"
                " it waits: if it waits or runs, it is cancelled)", 0)
    return f"cancel requested for task {task_id} ({look.status}); workers act on it within about a second", 0


def _finished(status: str) -> str:
    return {"succeeded": "succeeded", "failed": "failed", "cancelled": "been cancelled"}[status]


def _stop(line: str, code: int) -> NoReturn:
    click.echo(f"hurtle cancel: {line}", err=True)
    raise click.exceptions.Exit(code)
