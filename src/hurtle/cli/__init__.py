"""The ``hurtle`` command: one module per subcommand."""

from __future__ import annotations

import sys

import click

from hurtle.cli.bench import bench
from hurtle.cli.common import EXIT_USER_ERROR
from hurtle.cli.demo import demo
from hurtle.cli.dlq import dlq
from hurtle.cli.status import status
from hurtle.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hurtle")
def cli() -> None:
    """hurtle: a fast task queue. Send tasks from your code; run them with `hurtle worker`."""


cli.add_command(worker)
cli.add_command(bench)
cli.add_command(demo)
cli.add_command(dlq)
cli.add_command(status)


def main() -> None:
    """Entry point: every user error is one line on stderr and exit code 2."""
    try:
        code = cli.main(prog_name="hurtle", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hurtle: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        name = exc.ctx.command_path if getattr(exc, "ctx", None) else "hurtle"  # type: ignore[attr-defined]
        click.echo(f"{name}: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USER_ERROR if isinstance(exc, click.UsageError) else exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
