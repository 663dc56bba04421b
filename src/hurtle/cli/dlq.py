"""``hurtle dlq list|requeue|purge``: look at dead letters, put them back, or drop them."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hurtle.brokers import DeadLetter
from hurtle.cli.common import app_option, broker_option, on_connection, open_connection, where_to_read
from hurtle.cli.literal import as_text, literal, when
from hurtle.dead_letters import requeue_and_forget, task_of

#: ``dlq requeue`` when some ids named no dead letter (the others were requeued);
#: 2 stays what it is everywhere: a usage error, nothing done.
EXIT_UNKNOWN_IDS = 1
_REASON_WIDTH = 120  # characters of a reason's first line, without --full

_queue_option = click.option("-q", "--queue", help="Only this queue's dead letters.")


@click.group()
def dlq() -> None:
    """Dead letters: messages that failed for good or could not run."""


@dlq.command("list")
@app_option
@broker_option
@_queue_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--full", is_flag=True, help="Show the whole reason (tracebacks included).")
def list_(app_spec: str | None, broker_url: str | None, queue: str | None, limit: int, full: bool) -> None:
    """List the newest dead letters with why they died."""
    where = where_to_read(app_spec, broker_url)
    letters = on_connection(open_connection(where), lambda c: c.broker.dead_letters(queue, limit))
    if not letters:
        click.echo(f"no dead letters on {where.broker_url}")
        return
    # Every cell is the broker's data, whoever wrote it: printed as it is, never as markup.
    table = Table("id", "task id", "queue", "task", "failed at", "reason", title=literal(where.broker_url))
    for letter in letters:
        table.add_row(
            literal(letter.id), literal(letter.message_id), literal(letter.queue), _task_of(letter),
            when(letter.failed_at), _reason(letter.reason, full),
        )
    Console().print(table)


@dlq.command()
@app_option
@broker_option
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Requeue every dead letter.")
def requeue(app_spec: str | None, broker_url: str | None, ids: tuple[str, ...], every: bool) -> None:
    """Put dead letters back on their queues: those named by IDS (a dead letter's id,
    or a task id), or --all. Exit code 1 when some ids named no dead letter."""
    if not ids and not every:
        raise click.UsageError("name the ids to requeue (dead-letter or task ids), or pass --all")
    if ids and every:
        raise click.UsageError("name ids or pass --all, not both")
    connection = open_connection(where_to_read(app_spec, broker_url))
    requeued = on_connection(connection, lambda c: requeue_and_forget(c, None if every else ids))
    click.echo(f"requeued {requeued.count} message(s)")
    if requeued.unknown:
        unknown = ", ".join(requeued.unknown)
        click.echo(f"hurtle dlq requeue: no dead letter has the id or task id {unknown}", err=True)
        raise click.exceptions.Exit(EXIT_UNKNOWN_IDS)


@dlq.command()
@app_option
@broker_option
@_queue_option
@click.option("--yes", is_flag=True, help="Don't ask.")
def purge(app_spec: str | None, broker_url: str | None, queue: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    connection = open_connection(where_to_read(app_spec, broker_url))
    which = f"queue {queue!r}" if queue else "every queue"
    if not yes and not click.confirm(f"delete the dead letters of {which} on {connection.broker.url}?"):
        return  # nothing was opened: brokers connect on first use
    count = on_connection(connection, lambda c: c.broker.purge_dead(queue))
    click.echo(f"deleted {count} dead letter(s)")


def _task_of(letter: DeadLetter) -> Text:
    task = task_of(letter)
    return Text("(undecodable)", style="italic") if task is None else literal(task)


def _reason(reason: object, full: bool) -> Text:
    """The whole reason, or its first non-blank line cut to 120 characters."""
    text = as_text(reason)
    if full:
        return literal(text, lines=True)
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return literal(first[:_REASON_WIDTH])
