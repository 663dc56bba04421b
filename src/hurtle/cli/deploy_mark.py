"""``hurtle deploy-mark TEXT``: mark a deploy in the task history."""

from __future__ import annotations

import time

import click

from hurtle.cli.common import app_option, broker_option, fail, on_connection, open_connection, where_to_read
from hurtle.cli.literal import literal
from hurtle.client import Connection
from hurtle.observe.deploys import DeployMark, check_text, mark_deploy
from hurtle.tally_source import find_tallies


def no_history(scheme: str) -> str:
    """Why a broker keeps no task history, and how to give it one."""
    return (
        f"{scheme} keeps no task history; give the app a result store that does,"
        " as App(results='redis://...') or results='sqlite:///results.db'"
    )


@click.command("deploy-mark")
@click.argument("text")
@app_option
@broker_option
def deploy_mark(text: str, app_spec: str | None, broker_url: str | None) -> None:
    """Record a deploy marker: TEXT (a version, a short note) and the time now, kept
    as long as the task history. `hurtle status` names the latest one, so a change
    in a task's run time or failures can be set against the release that brought it."""
    try:
        text = check_text(text)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    where = where_to_read(app_spec, broker_url)
    if where.history_ttl <= 0:
        fail("the app's task history is off (history_ttl=0): no deploy marker is kept")

    async def write(connection: Connection) -> DeployMark:
        borrowed = connection.broker.tally_store()
        store = borrowed or find_tallies(where.broker_url, where.results_url)
        if store is None:
            fail(no_history(where.broker_url.scheme))
        try:
            return await mark_deploy(store, text, where.history_ttl + 60.0)
        finally:
            if store is not borrowed:
                await store.close()

    mark = on_connection(open_connection(where), write)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mark.at))
    click.echo(f"marked deploy {literal(mark.text).plain} at {stamp}")
