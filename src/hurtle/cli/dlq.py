"""``hurtle dlq list|requeue|purge``: look at dead letters, put them back, or drop them."""

from __future__ import annotations

import datetime

import click
from rich.console import Console
from rich.table import Table

from hurtle.brokers import DeadLetter
from hurtle.cli.common import on_broker, open_broker
from hurtle.envelope import DecodeError, decode

_broker_option = click.option(
    "--broker", "broker_url", help="Broker URL. Default: $HURTLE_BROKER, else sqlite:///hurtle.db."
)
_queue_option = click.option("-q", "--queue", help="Only this queue's dead letters.")


@click.group()
def dlq() -> None:
    """Dead letters: messages that failed for good or could not run."""


@dlq.command("list")
@_broker_option
@_queue_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--full", is_flag=True, help="Show the whole reason (tracebacks included).")
def list_(broker_url: str | None, queue: str | None, limit: int, full: bool) -> None:
    """List the newest dead letters with why they died."""
    letters = on_broker(open_broker(broker_url), lambda b: b.dead_letters(queue, limit))
    if not letters:
        click.echo("no dead letters")
        return
    table = Table("id", "queue", "task", "failed at", "reason")
    for letter in letters:
        reason = letter.reason if full else letter.reason.strip().splitlines()[0][:120]
        table.add_row(letter.id, letter.queue, _task_of(letter), _when(letter.failed_at), reason)
    Console().print(table)


@dlq.command()
@_broker_option
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Requeue every dead letter.")
def requeue(broker_url: str | None, ids: tuple[str, ...], every: bool) -> None:
    """Put dead letters (by id, or --all) back on their queues."""
    if not ids and not every:
        raise click.UsageError("name the ids to requeue, or pass --all")
    chosen = None if every else list(ids)
    count = on_broker(open_broker(broker_url), lambda b: b.requeue_dead(chosen))
    click.echo(f"requeued {count} message(s)")


@dlq.command()
@_broker_option
@_queue_option
@click.option("--yes", is_flag=True, help="Don't ask.")
def purge(broker_url: str | None, queue: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    where = f"queue {queue!r}" if queue else "every queue"
    if not yes and not click.confirm(f"delete the dead letters of {where}?"):
        return
    count = on_broker(open_broker(broker_url), lambda b: b.purge_dead(queue))
    click.echo(f"deleted {count} dead letter(s)")


def _task_of(letter: DeadLetter) -> str:
    try:
        return decode(letter.body).task
    except DecodeError:
        return "(undecodable)"


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")
