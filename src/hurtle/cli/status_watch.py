"""``hurtle status --watch``: the status view, read again and redrawn in place until Ctrl-C.

Each refresh opens its own connection, connected once without retrying, and
closes it: a broker that went away is one line in the view at the next refresh,
and the view comes back by itself when the broker does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from hurtle.cli.common import Where
from hurtle.cli.literal import literal
from hurtle.cli.status_view import read_snapshot, renderables
from hurtle.client import Connection, make_connection
from hurtle.errors import HurtleError

DEFAULT_INTERVAL = 2.0  # seconds between refreshes
#: Seconds one refresh may take (at least the interval): a broker that drops
#: mid-read reconnects with backoff for up to its ``reconnect_timeout`` (30 s),
#: and the view says so rather than freezing.
READ_LIMIT = 10.0


async def watch(first: Connection, where: Where, queues: Sequence[str] | None, interval: float) -> None:
    """Refresh every ``interval`` seconds until cancelled (Ctrl-C), starting on ``first``."""
    shown: list[RenderableType] = []
    connection = first
    with Live(console=Console(), auto_refresh=False, transient=False) as live:
        while True:
            problem = None
            try:
                shown = await asyncio.wait_for(_read(connection, where, queues), max(READ_LIMIT, interval))
            except (HurtleError, OSError, asyncio.TimeoutError) as exc:
                problem = _problem(exc, interval, stale=bool(shown))
            live.update(Group(_header(interval, problem), *shown), refresh=True)
            await asyncio.sleep(interval)
            connection = make_connection(where.broker_url, where.results_url, where.visibility_timeout)


async def _read(connection: Connection, where: Where, queues: Sequence[str] | None) -> list[RenderableType]:
    try:
        await connection.broker.connect()
        return renderables(await read_snapshot(connection, where, queues))
    finally:
        await connection.close()


def _header(interval: float, problem: Text | None) -> RenderableType:
    read_at = time.strftime("%H:%M:%S")
    line = Text(f"refreshed every {interval:g}s, last at {read_at} (Ctrl-C to stop)", style="dim")
    return line if problem is None else Group(line, problem)


def _problem(exc: BaseException, interval: float, *, stale: bool) -> Text:
    """The error as one line; ``stale``: the tables below it are the last ones read."""
    why = next(iter(str(exc).strip().splitlines()), "") or type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError):
        why = "no answer in time"
    below = "; below: the last tables read" if stale else ""
    line = literal(f"could not read: {why}; trying again every {interval:g}s{below}")
    line.stylize("bold red")
    return line
