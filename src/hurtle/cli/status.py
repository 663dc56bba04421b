"""``hurtle status``: what waits where."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from hurtle.cli.common import app_option, broker_option, on_connection, open_connection, where_to_read
from hurtle.cli.literal import literal
from hurtle.worker.startup import describe_results


@click.command()
@app_option
@broker_option
@click.option("-q", "--queues", help="Comma-separated queues. Default: every known queue.")
def status(app_spec: str | None, broker_url: str | None, queues: str | None) -> None:
    """Queue depths: ready, delayed, in flight (leased by a worker) and dead.

    "?" marks a count the broker cannot know (in flight on RabbitMQ)."""
    where = where_to_read(app_spec, broker_url)
    connection = open_connection(where)
    names = [q for q in queues.split(",") if q] if queues else None
    rows = on_connection(connection, lambda c: c.broker.stats(names))
    if not rows:
        click.echo(f"no queues on {where.broker_url}")
        return
    results = f"results: {describe_results(where.broker_url, where.results_url)}"
    # Queue names are the broker's data, whoever wrote them: printed as they are, never as markup.
    table = Table(
        "queue", "ready", "delayed", "in flight", "dead",
        title=literal(where.broker_url), caption=literal(results),
    )
    for row in rows:
        counts = (row.ready, row.delayed, row.in_flight, row.dead)
        table.add_row(literal(row.name), *(literal("?" if count is None else count) for count in counts))
    Console().print(table)
