"""``hurtle status``: what waits where, and which workers run what."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hurtle.brokers import QueueStats
from hurtle.cli.common import Where, app_option, broker_option, on_connection, open_connection, where_to_read
from hurtle.cli.literal import literal
from hurtle.cli.status_workers import duration, not_visible, read_registry, workers_json, workers_table
from hurtle.client import Connection
from hurtle.observe.registry import WorkerRecord
from hurtle.worker.startup import describe_results


@click.command()
@app_option
@broker_option
@click.option("-q", "--queues", help="Comma-separated queues. Default: every known queue.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"queues": [...], "workers": [...]}'
              " (workers: null where the app's stores keep no registry).")
def status(app_spec: str | None, broker_url: str | None, queues: str | None, as_json: bool) -> None:
    """Queue depths: ready, how long the oldest ready message has waited, delayed,
    in flight (leased by a worker) and dead; then the worker processes alive now
    (the worker registry): busy slots, memory, uptime and the tasks they run.

    "?" marks a figure the broker cannot know (in flight and oldest on RabbitMQ)."""
    where = where_to_read(app_spec, broker_url)
    connection = open_connection(where)
    names = [q for q in queues.split(",") if q] if queues else None

    async def read(c: Connection) -> tuple[list[QueueStats], list[WorkerRecord] | None]:
        return await c.broker.stats(names), await read_registry(where)

    rows, workers = on_connection(connection, read)
    if as_json:
        click.echo(json.dumps({"queues": [_queue_json(row) for row in rows],
                               "workers": None if workers is None else workers_json(workers)}))
        if workers is None:
            click.echo(not_visible(where), err=True)
        return
    _print_queues(where, rows)
    if workers is None:
        click.echo(not_visible(where))
    elif not workers:
        click.echo("no workers running")
    else:
        Console().print(workers_table(workers))


def _print_queues(where: Where, rows: list[QueueStats]) -> None:
    if not rows:
        click.echo(f"no queues on {where.broker_url}")
        return
    results = f"results: {describe_results(where.broker_url, where.results_url)}"
    # Queue names are the broker's data, whoever wrote them: printed as they are, never as markup.
    table = Table(
        "queue", "ready", "oldest", "delayed", "in flight", "dead",
        title=literal(where.broker_url), caption=literal(results),
    )
    for row in rows:
        oldest = None if row.oldest_ready_age is None else duration(row.oldest_ready_age)
        figures = (row.ready, oldest, row.delayed, row.in_flight, row.dead)
        table.add_row(literal(row.name), *(literal("?" if figure is None else figure) for figure in figures))
    Console().print(table)


def _queue_json(row: QueueStats) -> dict[str, Any]:
    return {"name": row.name, "ready": row.ready, "oldest_ready_age": row.oldest_ready_age,
            "delayed": row.delayed, "in_flight": row.in_flight, "dead": row.dead}
