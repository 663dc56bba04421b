"""What every command shares: one-line user errors, loading the app, running coroutines."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from hurtle.app import App
from hurtle.brokers import Broker, from_url
from hurtle.errors import HurtleError
from hurtle.settings import broker_url_from_env

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


def redact(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_broker(url: str | None) -> Broker:
    try:
        return from_url(broker_url_from_env(url))
    except HurtleError as exc:
        fail(str(exc))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a command, turning hurtle errors into one-line user errors."""
    try:
        return asyncio.run(coro)
    except HurtleError as exc:
        fail(str(exc))


def on_broker(broker: Broker, action: Callable[[Broker], Awaitable[T]]) -> T:
    """Run one broker action for a command, closing the broker whatever happens;
    hurtle errors become one-line user errors."""

    async def act() -> T:
        try:
            return await action(broker)
        finally:
            await broker.close()

    return run(act())


async def check_reachable(broker: Broker) -> None:
    """Connect once, so an unreachable broker is a one-line error before any fork."""
    try:
        await broker.connect()
    finally:
        await broker.close()
