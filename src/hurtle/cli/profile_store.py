"""Where the ``hurtle profile`` commands read profiles, and how they find a task's."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import click

from hurtle import tally_source
from hurtle.cli.common import fail, run, where_to_read
from hurtle.errors import HurtleError
from hurtle.profiling import record
from hurtle.profiling.record import Profile
from hurtle.settings import ENV_APP
from hurtle.tallies import TallyStore

T = TypeVar("T")

HOW_TO_PROFILE = "turn profiling on with `hurtle worker MODULE --profile all` or @app.task(profile=True)"

profile_dir_option = click.option(
    "--profile-dir", type=click.Path(file_okay=False), default=None,
    help="Read the profiles kept in this directory (workers run with the same --profile-dir).",
)


class ProfilePlace:
    """Where profiles are read from, and the store open there."""

    def __init__(self, app_spec: str | None, broker_url: str | None, profile_dir: str | None) -> None:
        where = where_to_read(app_spec, broker_url)
        self.name = profile_dir if profile_dir else str(where.broker_url)
        store_url = (where.results_url or where.broker_url).reveal()
        missing = _missing_database(store_url) if not profile_dir else None
        if missing:  # reading must not create an empty database that would answer "nothing here"
            why = "nothing was sent to it yet" if where.app_given else f"no -A/--app given; set {ENV_APP}"
            fail(f"no hurtle database at {missing} ({why})")
        try:
            self.store = tally_source.open_tallies(where.broker_url, where.results_url, profile_dir)
        except HurtleError as exc:
            fail(str(exc))
        if isinstance(self.store, tally_source.BrokerTallies):  # the broker's, or the result store's
            self.name = str(self.store.broker.url)
        if where.by_default and not profile_dir:
            click.echo(f"reading {self.name} (no -A/--app given; set {ENV_APP} or pass -A)", err=True)

    def use(self, action: Callable[[TallyStore], Awaitable[T]]) -> T:
        """Run ``action`` on the store, closing it whatever happens."""

        async def act() -> T:
            try:
                return await action(self.store)
            finally:
                await self.store.close()

        return run(act())

    def read(self, task: str) -> Profile:
        """The profile of the task ``task`` names (see ``choose_task``)."""

        async def read(store: TallyStore) -> Profile:
            name = choose_task(task, await profiled_tasks(store), self.name)
            fields = await store.read(record.key(name))
            if not fields:
                fail(f"the profile of {name} on {self.name} expired or was reset just now")
            return Profile.from_tally(name, fields)

        return self.use(read)


def _missing_database(url: str) -> str | None:
    """The path of a SQLite database ``url`` names that does not exist."""
    if not url.startswith("sqlite:"):
        return None
    from hurtle.brokers.sqlite.broker import path_from_url

    try:
        path = path_from_url(url)
    except HurtleError:
        return None  # open_tallies says what is wrong with it
    return None if os.path.exists(path) else os.path.abspath(path)


async def profiled_tasks(store: TallyStore) -> list[str]:
    return [record.task_name(key) for key in await store.keys(record.PREFIX)]


def choose_task(query: str, names: Sequence[str], place: str) -> str:
    """The profiled task ``query`` names: its whole name, or the end of it after a dot."""
    if query in names:
        return query
    ends = [name for name in names if name.endswith("." + query)]
    if len(ends) == 1:
        return ends[0]
    if ends:
        fail(f"{query!r} names several profiled tasks: {', '.join(ends)}")
    if names:
        fail(f"no profile for {query!r} on {place}; profiled tasks: {', '.join(names)}")
    fail(f"no task has a profile on {place}; {HOW_TO_PROFILE}")
