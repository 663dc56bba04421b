"""``hurtle profile flame``: a task's profile as a flame graph file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from hurtle.cli.common import app_option, broker_option, fail
from hurtle.cli.profile_store import ProfilePlace, profile_dir_option
from hurtle.profiling import export
from hurtle.profiling.fold import fold
from hurtle.profiling.record import Profile

#: Output suffixes and what each writes from a profile and its folded stacks.
_FORMATS: dict[str, Callable[[Profile, dict[tuple[str, ...], int]], str]] = {
    ".html": lambda p, stacks: export.flame_html(p.task, stacks, p.cpu_us, p.last),
    ".speedscope.json": lambda p, stacks: export.speedscope_json(p.task, stacks),
    ".txt": lambda p, stacks: export.folded_text(stacks),
    ".folded": lambda p, stacks: export.folded_text(stacks),
}


def output_format(path: Path) -> str:
    """The suffix of ``path`` that names its format; one line and exit 2 for any other."""
    for suffix in _FORMATS:
        if path.name.endswith(suffix):
            return suffix
    fail(f"cannot tell the format of {path.name!r}: name it *{', *'.join(_FORMATS)}")


@click.command("flame")
@click.argument("task")
@app_option
@broker_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write; its suffix picks the format: .html (interactive, offline),"
                   " .speedscope.json (speedscope.app), .txt or .folded (flamegraph.pl, inferno).")
@click.option("--all-frames", is_flag=True, help="Keep hurtle's own frames (folded away by default).")
@profile_dir_option
def flame_command(
    task: str, app_spec: str | None, broker_url: str | None, output: Path, all_frames: bool,
    profile_dir: str | None,
) -> None:
    """Write TASK's profile as a flame graph: where its time went, by stack."""
    suffix = output_format(output)
    profile = ProfilePlace(app_spec, broker_url, profile_dir).read(task)
    stacks = fold(profile.stacks, all_frames)
    if not stacks:
        fail(f"the profile of {task} has no stacks yet: its executions were too short to be sampled")
    output.write_text(_FORMATS[suffix](profile, stacks), encoding="utf-8")
    click.echo(f"wrote {output} ({len(stacks)} stacks, {sum(stacks.values()) / 1e6:.3f} s seen)")
