"""The repeated-setup detector: work a task redoes on every call that belongs at start-up.

The two costliest mistakes seen in task code are an ORM configured on every call
(``configure_mappers`` re-run per job cost 4x the jobs' own time) and a client or
connection pool built per call (a new connection per request: timeouts over 1 s).
Both leave the same print in a profile: one function takes a large share of every
execution, and its name, or its caller's, says it builds something.

A function is a suspect when all of these hold:

- *every execution*: it was seen in at least ``EVERY_EXECUTION`` of the executions
  profiled (its ``e:`` field), and at least ``MIN_EXECUTIONS`` were profiled; a cache
  filled once, on the first call, is seen in one execution and is not a suspect;
- *significant*: its total share of the task's time is at least ``SIGNIFICANT_SHARE``;
- *looks like setup*: its name, or the name of a function calling it (other than
  the task's own), matches the patterns below (building an engine, client, pool,
  session or connection; ``configure_mappers``, ``setup_*``, ``init_*``, ``connect``,
  ``from_url``, importing a module; filling a cache: ``load_config``,
  ``build_index``, ``warm_cache``);
- it is not the task's own function, and no function calling it is a suspect: the
  outermost frame is named, the call in the user's code that does the setup, not a
  library's innermost frame.

Sampling can miss a short call in some executions, so ``EVERY_EXECUTION`` is below 1.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from hurtle.profiling.record import Frame, Profile
from hurtle.profiling.report import FunctionTime, Stacks, fold, function_times, seen_us, share

#: Share of the executions profiled a function must be seen in.
EVERY_EXECUTION = 0.8
#: Fewer executions than this tell nothing about "every execution".
MIN_EXECUTIONS = 5
#: Share of the task's time a function must take.
SIGNIFICANT_SHARE = 0.15

ADVICE = "move it to @app.on_worker_start or @app.on_preload"

# A name's first word, or first two, alone say setup.
_SETUP_VERBS = frozenset({
    "setup", "init", "initialize", "initialise", "bootstrap", "configure", "connect", "reconnect",
    "warm", "warmup", "preload",
})
# These verbs say setup only in front of one of the nouns: `load_config` yes, `load_user` no.
_BUILD_VERBS = frozenset({
    "create", "make", "build", "open", "new", "load", "fill", "populate", "prime", "ensure", "refresh",
    "compile",
})
_SETUP_NOUNS = frozenset({
    "engine", "engines", "client", "clients", "connection", "connections", "pool", "pools", "session",
    "sessions", "sessionmaker", "mapper", "mappers", "model", "models", "registry", "schema", "cache",
    "caches", "config", "configuration", "settings", "index", "vocab", "vocabulary", "templates",
    "metadata", "redis", "db", "database",
})
# Whole names that build or import, whatever their words.
_SETUP_NAMES = frozenset({
    "from_url", "from_dsn", "from_config", "from_env", "import_module", "_find_and_load",
    "_find_and_load_unlocked", "_load_unlocked", "exec_module", "create_engine", "create_async_engine",
    "configure_mappers",
})
# `__init__` of a class named like this builds a resource.
_RESOURCE_CLASS = re.compile(
    r"(engine|client|pool|session|sessionmaker|connection|connector|redis|registry|mappers?)$", re.IGNORECASE
)
_LIBRARY_PATHS = ("site-packages/", "dist-packages/", "/lib/python", "<frozen ", "<string>")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def looks_like_setup(qualname: str) -> bool:
    """Whether a function's qualified name says it builds, connects, configures or imports."""
    parts = qualname.split(".")
    name = parts[-1]
    if name == "__init__":
        return len(parts) > 1 and _RESOURCE_CLASS.search(parts[-2]) is not None
    if name in _SETUP_NAMES:
        return True
    words = [word.lower() for word in _WORD.findall(name)]
    if not words:
        return False
    if words[0] in _SETUP_VERBS or words[:2] == ["set", "up"]:
        return True
    return words[0] in _BUILD_VERBS and any(word in _SETUP_NOUNS for word in words[1:])


@dataclass(frozen=True)
class SetupSuspect:
    """A function that runs in every execution and looks like setup."""

    label: str
    total_us: int
    share: float
    executions_seen: int
    executions: int
    #: The call in the task's own code that leads to it (for most of its time), if
    #: any: the nearest caller that is not in an installed package or the stdlib.
    called_from: str | None

    @property
    def frame(self) -> Frame:
        return Frame.parse(self.label)

    @property
    def message(self) -> str:
        return f"{self.frame.name} runs in every execution ({self.share:.0%} of the task's time): {ADVICE}"


def setup_suspects(profile: Profile) -> list[SetupSuspect]:
    """The functions ``profile``'s task seems to set up again on every call, largest first."""
    if profile.executions < MIN_EXECUTIONS:
        return []
    stacks = fold(profile)
    whole = seen_us(profile)
    parents = _callers(stacks)
    roots = {stack[0] for stack in stacks}
    flagged = [
        time for time in function_times(stacks, profile.executions_seen)
        if time.label not in roots and _recurs(time, profile.executions)
        and share(time.total_us, whole) >= SIGNIFICANT_SHARE and _setup_like(time.label, parents)
    ]
    labels = {time.label for time in flagged}
    outermost = [time for time in flagged if not _below_another(time.label, labels, stacks)]
    return [
        SetupSuspect(
            time.label, time.total_us, share(time.total_us, whole), time.executions_seen, profile.executions,
            _user_caller(time.label, stacks),
        )
        for time in outermost
    ]


def _recurs(time: FunctionTime, executions: int) -> bool:
    return time.executions_seen >= EVERY_EXECUTION * executions


def _setup_like(label: str, parents: dict[str, set[str]]) -> bool:
    if looks_like_setup(Frame.parse(label).name):
        return True
    return any(looks_like_setup(Frame.parse(caller).name) for caller in parents.get(label, ()))


def _callers(stacks: Stacks) -> dict[str, set[str]]:
    """For each function, the frames right above it in any stack, but the task's own
    function: a task named ``init_tenant`` does its setup as its job, on purpose."""
    parents: dict[str, set[str]] = defaultdict(set)
    for stack in stacks:
        for depth in range(2, len(stack)):
            parents[stack[depth]].add(stack[depth - 1])
    return parents


def _below_another(label: str, flagged: set[str], stacks: Stacks) -> bool:
    """Whether, in some stack, another flagged function calls ``label`` (directly or not)."""
    for stack in stacks:
        if label in stack and any(other in flagged for other in stack[: stack.index(label)]):
            return True
    return False


def _user_caller(label: str, stacks: Stacks) -> str | None:
    """The nearest frame above ``label`` in the task's own code, by most time: a
    connection is opened deep inside a client library, but the line to move is
    the user's."""
    times: dict[str, int] = defaultdict(int)
    for stack, us in stacks.items():
        if label not in stack:
            continue
        above = stack[: stack.index(label)]
        if above:
            own = [frame for frame in above if not _installed(Frame.parse(frame).path)]
            times[own[-1] if own else above[-1]] += us
    return max(sorted(times), key=lambda caller: times[caller]) if times else None


def _installed(path: str) -> bool:
    """Whether ``path`` is a library's (an installed package, the stdlib, frozen code)."""
    return any(mark in path.replace("\\", "/") for mark in _LIBRARY_PATHS)
