"""The demo's last word: where the time went in the task that took the most.

The demo's worker runs with ``--profile all``; its profiles are read back here
through the same pieces ``hurtle profile show`` uses, so the line the demo
prints is the top of what that command would show.
"""

from __future__ import annotations

from dataclasses import dataclass

from hurtle.errors import HurtleError
from hurtle.profiling import record
from hurtle.profiling.record import Frame, Profile
from hurtle.profiling.report import fold, function_times, hot_lines, ranked, seen_us, share
from hurtle.tally_source import open_tallies
from hurtle.urls import SecretURL


@dataclass(frozen=True)
class Hotspot:
    """The function where ``task`` spent most of its time, innermost (its self share),
    and the task's own line where most time was seen."""

    task: str
    share: float
    function: Frame
    line: str | None


def keeps_profiles(broker_url: SecretURL) -> bool:
    """Whether a worker on this broker can keep profiles (RabbitMQ keeps none)."""
    try:
        open_tallies(broker_url, None, None)
    except HurtleError:
        return False
    return True


async def forget(broker_url: SecretURL, task_names: list[str]) -> None:
    """Delete these tasks' profiles, so an earlier demo on a shared broker does not add in."""
    store = open_tallies(broker_url, None, None)
    try:
        await store.delete([record.key(name) for name in task_names])
    finally:
        await store.close()


async def hottest(broker_url: SecretURL, task_names: list[str]) -> Hotspot | None:
    """The hotspot of the task, of these, the sampler saw the longest; None when it saw none."""
    store = open_tallies(broker_url, None, None)
    try:
        profiles = [Profile.from_tally(name, await store.read(record.key(name))) for name in task_names]
    finally:
        await store.close()
    seen = [profile for profile in profiles if seen_us(profile) > 0]
    if not seen:
        return None
    busiest = max(seen, key=seen_us)
    top = ranked(function_times(fold(busiest), busiest.executions_seen), "self")[0]
    lines = hot_lines(busiest, 1)
    line = f"{lines[0].path}:{lines[0].line}" if lines else None
    return Hotspot(busiest.task, share(top.self_us, seen_us(busiest)), top.frame, line)

