"""``hurtle profile show|list|reset``: the profiles workers keep, read back.

Profiles live in the app's broker store (or a ``--profile-dir``) as tallies
(``hurtle.profiling.record``); these commands read, list and delete them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from hurtle.cli.common import app_option, broker_option, fail
from hurtle.cli.literal import literal, when
from hurtle.cli.profile_render import Shown, render, to_json
from hurtle.cli.profile_store import (
    HOW_TO_PROFILE,
    ProfilePlace,
    choose_task,
    profile_dir_option,
    profiled_tasks,
)
from hurtle.profiling import record
from hurtle.profiling.memory import memory_view
from hurtle.profiling.record import Profile
from hurtle.profiling.report import (
    SortBy,
    callers,
    fold,
    function_times,
    hot_lines,
    matching_functions,
    ranked,
    seen_us,
    timing,
)
from hurtle.profiling.setup_detector import setup_suspects
from hurtle.tallies import TallyStore

T = TypeVar("T")

_HOT_LINES = 5


@click.command("show")
@click.argument("task")
@app_option
@broker_option
@profile_dir_option
@click.option("--sort", type=click.Choice(["total", "self"]), default="total", show_default=True,
              help="Rank functions by the time of the stacks they are in, or where they are innermost.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=25, show_default=True,
              help="How many functions (and allocation sites) to list.")
@click.option("--callers", "callers_of", metavar="FUNC",
              help="Who calls FUNC (a qualname, its end, or 'qualname (path:line)'), and for how much of it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every figure.")
@click.option("--all-frames", is_flag=True, help="Keep the frames of hurtle itself, asyncio and threading.")
@click.option("--memory", "with_memory", is_flag=True,
              help="List the allocation sites still holding memory (workers run with --profile-memory).")
def show_command(
    task: str, app_spec: str | None, broker_url: str | None, profile_dir: str | None, sort: SortBy,
    limit: int, callers_of: str | None, as_json: bool, all_frames: bool, with_memory: bool,
) -> None:
    """Where TASK's time goes: wall time on CPU and waiting, memory growth, the
    functions ranked by share, the hottest lines, and setup it repeats on every call."""
    profile = ProfilePlace(app_spec, broker_url, profile_dir).read(task)
    shown = _shown(profile, sort, limit, all_frames, callers_of)
    if as_json:
        click.echo(json.dumps(to_json(shown, with_callers=callers_of is not None)))
        return
    render(shown, Console(), with_memory=with_memory)


def _shown(profile: Profile, sort: SortBy, limit: int, all_frames: bool, callers_of: str | None) -> Shown:
    stacks = fold(profile, all_frames=all_frames)
    times = function_times(stacks, profile.executions_seen)
    shown = Shown(
        profile, seen_us(profile), timing(profile), sort, all_frames, ranked(times, sort)[:limit],
        hot_lines(profile, _HOT_LINES), setup_suspects(profile), memory_view(profile, limit),
    )
    if callers_of is None:
        return shown
    labels = matching_functions(stacks, callers_of)
    if not labels:
        fail(f"no function {callers_of!r} in the profile of {profile.task}")
    if len(labels) > 1:
        fail(f"{callers_of!r} names several functions; pass one of: {'; '.join(labels)}")
    callee = next(time for time in times if time.label == labels[0])
    return dataclasses.replace(shown, callee=callee, callers=tuple(callers(stacks, labels[0])))


@click.command("list")
@app_option
@broker_option
@profile_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per task.")
def list_command(
    app_spec: str | None, broker_url: str | None, profile_dir: str | None, as_json: bool
) -> None:
    """Every profiled task: executions profiled, mean wall time, last written."""
    place = ProfilePlace(app_spec, broker_url, profile_dir)

    async def read(store: TallyStore) -> list[Profile]:
        profiles = []
        for name in await profiled_tasks(store):
            fields = await store.read(record.key(name))
            if fields:
                profiles.append(Profile.from_tally(name, fields))
        return profiles

    profiles = place.use(read)
    if as_json:
        rows = [
            {"task": p.task, "executions": p.executions, "wall_ms_per_execution": timing(p).wall_ms,
             "last_write": p.last}
            for p in profiles
        ]
        click.echo(json.dumps(rows))
        return
    if not profiles:
        click.echo(f"no task has a profile on {place.name}; {HOW_TO_PROFILE}")
        return
    table = Table("task", "executions", "wall ms/exec", "last written", title=literal(place.name))
    for p in profiles:
        table.add_row(literal(p.task), str(p.executions), f"{timing(p).wall_ms:.2f}", when(p.last))
    Console().print(table)


@click.command("reset")
@click.argument("tasks", nargs=-1)
@app_option
@broker_option
@profile_dir_option
@click.option("--all", "every", is_flag=True, help="Delete every task's profile.")
def reset_command(
    tasks: tuple[str, ...], app_spec: str | None, broker_url: str | None, profile_dir: str | None, every: bool
) -> None:
    """Delete the profiles of TASKS (or --all), so the next ones start afresh."""
    if not tasks and not every:
        raise click.UsageError("name the tasks whose profiles to delete, or pass --all")
    if tasks and every:
        raise click.UsageError("name tasks or pass --all, not both")
    place = ProfilePlace(app_spec, broker_url, profile_dir)

    async def delete(store: TallyStore) -> list[str]:
        names = await profiled_tasks(store)
        chosen = names if every else list(dict.fromkeys(choose_task(t, names, place.name) for t in tasks))
        await store.delete([record.key(name) for name in chosen])
        return chosen

    deleted = place.use(delete)
    click.echo(f"deleted {len(deleted)} profile(s)")
