"""``hurtle status``: what waits where."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from hurtle.cli.common import on_broker, open_broker, redact


@click.command()
@click.option("--broker", "broker_url", help="Broker URL. Default: $HURTLE_BROKER, else sqlite:///hurtle.db.")
@click.option("-q", "--queues", help="Comma-separated queues. Default: every known queue.")
def status(broker_url: str | None, queues: str | None) -> None:
    """Queue depths: ready, delayed, in flight (leased by a worker) and dead."""
    broker = open_broker(broker_url)
    names = [q for q in queues.split(",") if q] if queues else None
    rows = on_broker(broker, lambda b: b.stats(names))
    if not rows:
        click.echo(f"no queues on {redact(broker.url)}")
        return
    table = Table("queue", "ready", "delayed", "in flight", "dead", title=redact(broker.url))
    for row in rows:
        table.add_row(row.name, str(row.ready), str(row.delayed), str(row.in_flight), str(row.dead))
    Console().print(table)
