"""How a task's profile is kept: the fields of one tally per task name.

Every worker process adds what it sampled to the tally ``profile:<task name>``
(``hurtle.tallies``), so the profiles of every process and machine on one
broker merge by adding. All times are integer microseconds.

Fields:

- ``n``: executions profiled; ``async``/``sync``: of which on the loop or in a thread
- ``wall``: their wall time; ``cpu``: their time on a CPU (a sync task's thread CPU
  time, measured; an async task's time seen running on the loop, sampled)
- ``seen``: time credited to the task's stacks by the sampler
- ``rss``: the growth of the process's RSS across the executions, bytes (may be
  negative); ``rss_n``: the executions it was measured over (each process's
  first few executions of a task are its warm-up, left out)
- ``rss_peak`` (highest): the largest RSS seen at the end of an execution, bytes
- ``last`` (highest): unix seconds of the latest write
- ``s:<stack>``: time seen on that stack, frames root first, joined by ``;``
- ``e:<frame>``: executions in which that frame was seen at least once
- ``l:<path>:<line>``: time seen with the task's own innermost line there
- ``m:<path>:<line>``: bytes allocated there during profiled executions and still
  held (only with ``--profile-memory``)

A frame is ``qualname (path:firstlineno)``. Frames of hurtle itself and of the
asyncio and threading plumbing are stored with a leading ``~``: views fold them
away unless asked for every frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX = "profile:"
#: Seconds a profile is kept after its last write.
TTL = 7 * 24 * 3600.0

EXECUTIONS = "n"
ASYNC = "async"
SYNC = "sync"
WALL = "wall"
CPU = "cpu"
SEEN = "seen"
RSS_GROWTH = "rss"
RSS_EXECUTIONS = "rss_n"
RSS_PEAK = "rss_peak"
LAST = "last"
STACK = "s:"
EXECUTIONS_SEEN = "e:"
LINE = "l:"
MEMORY = "m:"

PLUMBING = "~"
SEPARATOR = ";"

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*):(?P<line>\d+)\)$")


def key(task_name: str) -> str:
    return PREFIX + task_name


def task_name(tally_key: str) -> str:
    return tally_key.removeprefix(PREFIX)


def frame_label(qualname: str, path: str, line: int, plumbing: bool) -> str:
    """A frame as stored: ``qualname (path:line)``, ``~`` first for plumbing."""
    label = f"{qualname} ({path}:{line})".replace(SEPARATOR, ",")
    return PLUMBING + label if plumbing else label


@dataclass(frozen=True)
class Frame:
    name: str
    path: str
    line: int
    plumbing: bool

    @classmethod
    def parse(cls, label: str) -> Frame:
        plumbing = label.startswith(PLUMBING)
        text = label[1:] if plumbing else label
        match = _FRAME.match(text)
        if match is None:
            return cls(text, "?", 0, plumbing)
        return cls(match["name"], match["path"], int(match["line"]), plumbing)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.name} ({self.where})"


@dataclass
class Profile:
    """One task's profile as read back: the tally's fields, sorted out."""

    task: str
    executions: int = 0
    async_executions: int = 0
    sync_executions: int = 0
    wall_us: int = 0
    cpu_us: int = 0
    seen_us: int = 0
    rss_growth: int = 0
    rss_executions: int = 0
    rss_peak: int = 0
    last: int = 0
    #: Time seen per stack: frame labels, root (the task's own function) first.
    stacks: dict[tuple[str, ...], int] = field(default_factory=dict)
    #: Executions in which each frame label was seen.
    executions_seen: dict[str, int] = field(default_factory=dict)
    #: Time seen per ``path:line`` of the task's own innermost line.
    lines: dict[str, int] = field(default_factory=dict)
    #: Bytes still held per allocation site ``path:line`` (with ``--profile-memory``).
    memory: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_tally(cls, task: str, fields: dict[str, int]) -> Profile:
        profile = cls(task)
        scalars = {
            EXECUTIONS: "executions", ASYNC: "async_executions", SYNC: "sync_executions",
            WALL: "wall_us", CPU: "cpu_us", SEEN: "seen_us", RSS_GROWTH: "rss_growth",
            RSS_EXECUTIONS: "rss_executions",
            RSS_PEAK: "rss_peak", LAST: "last",
        }
        for name, value in fields.items():
            attribute = scalars.get(name)
            if attribute is not None:
                setattr(profile, attribute, int(value))
            elif name.startswith(STACK):
                profile.stacks[tuple(name[len(STACK):].split(SEPARATOR))] = int(value)
            elif name.startswith(EXECUTIONS_SEEN):
                profile.executions_seen[name[len(EXECUTIONS_SEEN):]] = int(value)
            elif name.startswith(LINE):
                profile.lines[name[len(LINE):]] = int(value)
            elif name.startswith(MEMORY):
                profile.memory[name[len(MEMORY):]] = int(value)
        return profile

    @property
    def waiting_us(self) -> int:
        """Wall time not on a CPU: awaits, I/O, locks, the GIL."""
        return max(0, self.wall_us - self.cpu_us)
