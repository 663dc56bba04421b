"""The ``hurtle`` command: one module per subcommand."""

from __future__ import annotations

import sys

import click

from hurtle.cli.common import EXIT_USER_ERROR
from hurtle.cli.lazy import LazyGroup

#: Each subcommand's module, imported only when it runs: `hurtle worker` starts
#: without the benchmark's and the demo's imports (rich among them), which was a
#: good part of its start-up time.
_COMMANDS = {
    name: f"hurtle.cli.{name.replace('-', '_')}:{name.replace('-', '_')}"
    for name in (
        "worker", "bench", "demo", "dlq", "status", "profile", "schedule", "deploy-mark", "cancel",
        "dashboard",
    )
}


@click.group(cls=LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hurtle")
def cli() -> None:
    """hurtle: a fast task queue. Send tasks from your code; run them with `hurtle worker`."""


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
