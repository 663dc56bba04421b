"""``hurtle status``: what waits where."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from hurtle.cli.common import app_option, broker_option, on_connection, open_connection, where_to_read
from hurtle.settings import display_url
from hurtle.worker.startup import describe_results


@click.command()
@app_option
@broker_option
@click.option("-q", "--queues", help="Comma-separated queues. Default: every known queue.")
def status(app_spec: str | None, broker_url: str | None, queues: str | None) -> None:
    """Queue depths: ready, delayed, in flight (leased by a worker) and dead."""
    where = where_to_read(app_spec, broker_url)
    connection = open_connection(where)
    names = [q for q in queues.split(",") if q] if queues else None
    rows = on_connection(connection, lambda c: c.broker.stats(names))
    shown = display_url(where.broker_url)
    if not rows:
        click.echo(f"no queues on {shown}")
        return
    results = f"results: {describe_results(where.broker_url, where.results_url)}"
    table = Table("queue", "ready", "delayed", "in flight", "dead", title=shown, caption=results)
    for row in rows:
        table.add_row(row.name, str(row.ready), str(row.delayed), str(row.in_flight), str(row.dead))
    Console().print(table)
