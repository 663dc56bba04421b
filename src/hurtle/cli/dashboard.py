"""``hurtle dashboard``: serve the web pages of an app's queues, workers and tasks."""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING

import click

from hurtle.cli.common import (
    app_option,
    broker_option,
    fail,
    load_app,
    on_connection,
    open_connection,
    where_to_read,
)
from hurtle.urls import SecretURL

if TYPE_CHECKING:
    from hurtle.dashboard.security import Access

ENV_TOKEN = "HURTLE_DASHBOARD_TOKEN"
ENV_AUTH = "HURTLE_DASHBOARD_AUTH"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command()
@app_option
@broker_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--read-only", is_flag=True, help="Hide and refuse every action (requeue, purge, cancel).")
@click.option("--auth", metavar="USER:PASSWORD", envvar=ENV_AUTH,
              help=f"Ask for these HTTP Basic credentials. Default: ${ENV_AUTH}.")
@click.option("--token", metavar="TOKEN", envvar=ENV_TOKEN,
              help="Ask for this token (Authorization: Bearer, or open a page with ?token=)."
                   f" Default: ${ENV_TOKEN}.")
@click.option("--hide-args", is_flag=True, help="Never show task arguments.")
def dashboard(
    app_spec: str | None, broker_url: str | None, host: str, port: int, read_only: bool, auth: str | None,
    token: str | None, hide_args: bool,
) -> None:
    """Serve the dashboard: queues, workers, tasks, one task by id (cancel it),
    dead letters (requeue, purge), profiles and schedules, updated live. Loopback
    only unless --host says otherwise; with --auth or --token nothing is served
    without them."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        fail("the dashboard needs starlette and uvicorn: pip install 'hurtle[dashboard]'")
    from hurtle.dashboard.server import Options, create_app

    if not app_spec:
        fail("name the app to show: -A MODULE[:ATTR] (or set HURTLE_APP)")
    if auth and token:
        fail("--auth and --token: choose one")
    access = _access(auth, token)
    where = where_to_read(app_spec, broker_url)
    on_connection(open_connection(where), lambda c: c.broker.stats())  # unreachable: one line, now
    _check_port(host, port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mode = ", read-only" if read_only else ""
    guard = ", HTTP Basic" if auth else ", token" if token else ""
    if host not in LOOPBACK and not (auth or token):
        click.echo(f"hurtle dashboard: warning: {host} is reached without --auth or --token", err=True)
    click.echo(f"hurtle dashboard: http://{_shown(host)}:{port}/ ({where.broker_url}{mode}{guard})", err=True)
    options = Options(read_only=read_only, hide_args=hide_args)
    server = create_app(load_app(app_spec), options, access, SecretURL(where.broker_url))
    # No access log: a first request carries ?token=, which must not be written anywhere.
    uvicorn.run(server, host=host, port=port, log_level="warning", access_log=False)


def _access(auth: str | None, token: str | None) -> Access:
    from hurtle.dashboard.security import Access

    if auth is not None:
        user, colon, password = auth.partition(":")
        if not colon or not user or not password:
            fail("--auth takes USER:PASSWORD, both not empty")
        return Access(user=user, password=password)
    if token is not None:
        if len(token) < 8:
            fail("--token: use 8 characters or more")
        return Access(token=token)
    return Access()


def _check_port(host: str, port: int) -> None:
    """One line, not uvicorn's traceback, for an address that cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            fail(f"cannot listen on {host}:{port}: {why}")


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
