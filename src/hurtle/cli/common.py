"""What every command shares: one-line user errors, loading the app, running coroutines."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from hurtle.app import App
from hurtle.brokers import Broker
from hurtle.client import Connection, make_connection
from hurtle.errors import HurtleError
from hurtle.settings import (
    DEFAULT_BROKER_URL,
    ENV_APP,
    ENV_BROKER,
    HISTORY_TTL,
    VISIBILITY_TIMEOUT,
    broker_url_from_env,
    results_url_from_env,
)
from hurtle.urls import SecretURL

T = TypeVar("T")

EXIT_USER_ERROR = 2


class UserError(click.ClickException):
    """A mistake of the user's: printed as one line, exit code 2, no traceback."""

    exit_code = EXIT_USER_ERROR


def fail(message: str) -> NoReturn:
    raise UserError(message)


def load_app(spec: str) -> App:
    """Import ``MODULE[:ATTR]`` from the current directory; ATTR defaults to ``app``."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        fail(f"bad app {spec!r}: expected MODULE[:ATTR], e.g. tasks:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            fail(f"cannot import {module_name!r}: no such module here ({os.getcwd()})")
        fail(f"cannot import {module_name!r}: {exc}")
    except HurtleError as exc:
        fail(f"cannot import {module_name!r}: {exc}")
    except Exception as exc:
        fail(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}")
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        found = "nothing" if app is None else type(app).__name__
        fail(f"{module_name}:{attr} is {found}, not a hurtle.App")
    return app


#: ``-A/--app MODULE[:ATTR]`` (or ``$HURTLE_APP``) for every command that reads a broker.
app_option = click.option(
    "-A", "--app", "app_spec", metavar="MODULE[:ATTR]", envvar=ENV_APP,
    help=f"Read this app's broker and result store. Default: ${ENV_APP}.",
)
broker_option = click.option(
    "--broker", "broker_url",
    help=f"Broker URL; overrides the app's. Without an app: ${ENV_BROKER}, else {DEFAULT_BROKER_URL}.",
)


@dataclass(frozen=True)
class Where:
    """Where a command reads: the app's broker and result store, or what it was told."""

    broker_url: SecretURL
    results_url: SecretURL | None
    visibility_timeout: float
    app_given: bool
    #: No app, no --broker, no $HURTLE_BROKER: the default, which may not be the app's.
    by_default: bool = False
    #: The app's ``history_ttl`` (seconds the task history is kept; 0: none), else the default.
    history_ttl: float = HISTORY_TTL


def where_to_read(app_spec: str | None, broker_url: str | None) -> Where:
    """The app's broker and result store (``--broker`` overrides its broker); without
    an app, ``--broker``, else ``$HURTLE_BROKER``, else the default."""
    if app_spec:
        app = load_app(app_spec)
        return Where(
            SecretURL(broker_url or app.broker_url), app.results_url, app.visibility_timeout, True,
            history_ttl=app.history_ttl,
        )
    url = SecretURL(broker_url_from_env(broker_url))
    results = results_url_from_env(None)
    by_default = not broker_url and not os.environ.get(ENV_BROKER)
    return Where(url, SecretURL(results) if results else None, VISIBILITY_TIMEOUT, False, by_default)


def open_connection(where: Where) -> Connection:
    """Connect a command to its broker and result store, saying on stderr which
    broker it reads when nothing chose one. One line and exit 2 for a bad URL, or
    for a SQLite file that is not there: reading must not create one, since an
    empty new database would answer "nothing here" about the wrong place."""
    from hurtle.brokers.sqlite import SQLiteBroker  # here: `hurtle worker` starts without it

    try:
        connection = make_connection(where.broker_url, where.results_url, where.visibility_timeout)
    except HurtleError as exc:
        fail(str(exc))
    broker = connection.broker
    no_app = f"no -A/--app given; set {ENV_APP} or pass -A"
    if isinstance(broker, SQLiteBroker) and not os.path.exists(broker.path):
        why = "nothing has been sent to it yet" if where.app_given else no_app
        fail(f"no hurtle database at {os.path.abspath(broker.path)} ({why})")
    if where.by_default:
        click.echo(f"reading {broker.url} ({no_app})", err=True)
    # aiormq logs each failed attempt to connect: the command's one error line says it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    return connection


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a command, turning hurtle errors into one-line user errors."""
    try:
        return asyncio.run(coro)
    except HurtleError as exc:
        fail(str(exc))


def on_connection(connection: Connection, action: Callable[[Connection], Awaitable[T]]) -> T:
    """Run one action for a command, closing its connection whatever happens;
    hurtle errors become one-line user errors.

    The broker is connected once first, without retrying: an unreachable one is
    one line at once, where the action's own calls would reconnect with backoff
    for the URL's ``reconnect_timeout`` (30 s) before saying so.
    """

    async def act() -> T:
        try:
            await connection.broker.connect()
            return await action(connection)
        finally:
            await connection.close()

    return run(act())


async def check_reachable(broker: Broker) -> None:
    """Connect once, so an unreachable broker is a one-line error before any fork."""
    try:
        await broker.connect()
    finally:
        await broker.close()
