"""``hurtle profile``: where a task's time goes, from the profiles workers keep.

Each subcommand lives in a module of its own, imported only when it runs.
"""

from __future__ import annotations

import click

from hurtle.cli.lazy import LazyGroup

_SUBCOMMANDS = {
    "show": "hurtle.cli.profile_show:show_command",
    "list": "hurtle.cli.profile_show:list_command",
    "reset": "hurtle.cli.profile_show:reset_command",
    "flame": "hurtle.cli.profile_flame:flame_command",
    "worker": "hurtle.cli.profile_live:worker_command",
    "dump": "hurtle.cli.profile_live:dump_command",
}


@click.group(cls=LazyGroup, lazy=_SUBCOMMANDS)
def profile() -> None:
    """Where a task's time goes: profiles kept by workers run with --profile."""
