"""``hurtle schedule list``: an app's periodic tasks, their last and next runs, and the leader."""

from __future__ import annotations

import json
import os

import click
from rich.console import Console
from rich.table import Table

from hurtle.app import App
from hurtle.cli.common import app_option, broker_option, fail, load_app, run
from hurtle.cli.literal import literal
from hurtle.record_source import BrokerRecords, open_records
from hurtle.schedule.listing import Listing, local_time, read_listing
from hurtle.urls import SecretURL


@click.group()
def schedule() -> None:
    """Periodic tasks (@app.periodic, app.schedule) and the worker that sends them."""


@schedule.command("list")
@app_option
@broker_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the schedules and the leader.")
def list_(app_spec: str | None, broker_url: str | None, as_json: bool) -> None:
    """List the app's schedules: when each ran last and runs next, and which
    worker (host:pid) sends them now."""
    if not app_spec:
        fail("name the app whose schedules to list: -A MODULE[:ATTR] (or set HURTLE_APP)")
    app = load_app(app_spec)
    listing = run(_read(app.broker_url if broker_url is None else broker_url, app))
    if as_json:
        rows = [row.as_json() for row in listing.rows]
        click.echo(json.dumps({"leader": listing.leader, "kept": listing.kept, "schedules": rows}))
        return
    _print(listing, app.broker_url.scheme)


async def _read(broker_url: str | SecretURL, app: App) -> Listing:
    store = open_records(broker_url, app.results_url)
    if store is None or _absent_sqlite(store):  # reading must not create the database
        listing = await read_listing(app, None)
        return Listing(listing.rows, None, store is not None)
    try:
        return await read_listing(app, store)
    finally:
        await store.close()


def _absent_sqlite(store: BrokerRecords) -> bool:
    from hurtle.brokers.sqlite import SQLiteBroker

    return isinstance(store.broker, SQLiteBroker) and not os.path.exists(store.broker.path)


def _print(listing: Listing, scheme: str) -> None:
    if not listing.rows:
        click.echo("no schedules: declare them with @app.periodic or app.schedule")
        return
    if not listing.kept:
        leader = f"none: {scheme} keeps no records to elect one in (pass App(results=URL))"
    else:
        leader = listing.leader or "none (no worker runs the schedules now)"
    table = Table("schedule", "task", "when", "catch up", "last run", "next run", title=f"leader: {leader}")
    for row in listing.rows:
        s = row.schedule
        last = "never" if row.last_run_ms is None else local_time(s, row.last_run_ms)
        table.add_row(
            literal(s.name), literal(s.task), literal(s.describe()), s.catch_up, last,
            local_time(s, row.next_run_ms),
        )
    Console().print(table)
