"""The repeated-setup detector: work a task redoes on every call that belongs at start-up.

The two costliest mistakes seen in task code are an ORM configured on every call
(``configure_mappers`` re-run per job cost 4x the jobs' own time) and a client or
connection pool built per call (a new connection per request: timeouts over 1 s).
Both leave the same print in a profile: one function takes a large share of every
execution, and its name, or its callers', says it builds something.

A function is a suspect when all of these hold:

- *every execution*: it was seen (its ``e:`` field) in at least ``EVERY_EXECUTION``
  of the executions it would have been seen in had it run in each one; a cache
  filled once, on the first call, is seen in one execution per process and is not
  a suspect. The sampler catches a short execution only now and then (a 1 ms task
  sampled every few ms), so that expectation is not "all of them": it is worked out
  from how many executions the task itself was caught in (``expected_coverage``).
  The task must have been caught in at least ``MIN_EXECUTIONS``;
- *significant*: its total share of the task's time is at least ``SIGNIFICANT_SHARE``,
  and surely so: the share is read from samples, and a short task caught in ten
  executions gives about ten of them, so the lower bound of the share's one-sided
  95% interval is what must reach it (``significant``);
- *looks like setup*: its name matches the patterns below (building an engine,
  client, pool, session or connection; ``configure_mappers``, ``setup_*``,
  ``init_*``, ``connect``, ``from_url``, importing a module; filling a cache:
  ``load_config``, ``build_index``, ``warm_cache``: in the task's own code, not a
  library's; ``looks_like_setup``), or every stack it is in runs
  under a function whose name does (other than the task's own: a task named
  ``init_tenant`` sets up as its job). A helper shared by setup and real work,
  such as a client's retry loop, is neither;
- it is not the task's own function, and no function calling it is a suspect: the
  outermost frame is named, the call that does the setup, not a library's
  innermost frame; the suspect also names the nearest caller in the task's own
  code, the line to move.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from hurtle.profiling.frames import LIBRARY_PREFIXES
from hurtle.profiling.record import Frame, Profile
from hurtle.profiling.report import Stacks, fold, function_times, seen_us, share

#: Share of the executions a function would be seen in, were it in each, that it must be seen in.
EVERY_EXECUTION = 0.7
#: Fewer executions caught by the sampler than this tell nothing about "every execution".
MIN_EXECUTIONS = 5
#: Share of the task's time a function must take.
SIGNIFICANT_SHARE = 0.15
#: Standard errors a share's estimate must clear ``SIGNIFICANT_SHARE`` by (one-sided 95%).
CONFIDENCE_Z = 1.645

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
# Paths as workers keep them (``frames.LIBRARY_PREFIXES``), and whole ones.
_LIBRARY_STARTS = (*LIBRARY_PREFIXES, "<")
_LIBRARY_PATHS = ("/site-packages/", "/dist-packages/", "/lib/python")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def looks_like_setup(qualname: str, *, library: bool = False) -> bool:
    """Whether a function's qualified name says it builds, connects, configures or imports.

    A verb that says setup only with its noun (``ensure_connection``, ``load_config``)
    counts in the task's own code, not in a ``library``'s: there such a name is as
    often a check made on every call (redis-py's pool runs ``ensure_connection`` on
    each connection it hands out, the same connection every time), which no one can
    move to start-up; a library's real setup says so alone (``connect``,
    ``create_engine``, a pool's ``__init__``)."""
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
    return not library and words[0] in _BUILD_VERBS and any(word in _SETUP_NOUNS for word in words[1:])


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
    stacks = fold(profile)
    caught = _executions_caught(profile, stacks)
    if caught < MIN_EXECUTIONS:
        return []
    whole = seen_us(profile)
    roots = {stack[0] for stack in stacks}
    flagged = [
        time for time in function_times(stacks, profile.executions_seen)
        if time.label not in roots and significant(share(time.total_us, whole), caught)
        and time.executions_seen >= EVERY_EXECUTION * profile.executions * expected_coverage(
            share(time.total_us, whole), caught, profile.executions)
        and _setup_like(time.label, stacks)
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


def significant(function_share: float, caught: int) -> bool:
    """Whether a function's measured share says, with 95% confidence, that it takes at
    least ``SIGNIFICANT_SHARE`` of the task's time.

    A redis-py pool checks each connection it hands out (``ensure_connection``, 10%
    of a 1 ms INCR task); on a profile of ten caught executions it read 38%, seen in
    4 of them, and passed for setup. The executions caught stand for the number of
    samples: each gave at least one, so the interval errs wide, never narrow."""
    if caught <= 0:
        return False
    spread = CONFIDENCE_Z * math.sqrt(function_share * (1.0 - function_share) / caught)
    return function_share - spread >= SIGNIFICANT_SHARE


def expected_coverage(function_share: float, caught: int, executions: int) -> float:
    """The share of ``executions`` a function taking ``function_share`` of each one
    would be seen in, when the task itself was seen in ``caught`` of them.

    Samples falling at random, an execution given ``m`` samples on average is seen
    at all with probability ``1 - exp(-m)``, and a function holding a share ``s`` of
    it with ``1 - exp(-m s)``: ``m`` comes from the first, the answer from the second.
    When every execution was caught, ``m`` is taken as ``ln(2n)``, the least that
    makes that likely, so a well-sampled task is held to nearly every execution."""
    if executions <= 0:
        return 1.0
    caught_share = min(caught, executions - 0.5) / executions
    samples_per_execution = -math.log(1.0 - caught_share)
    return 1.0 - math.exp(-samples_per_execution * function_share)


def _executions_caught(profile: Profile, stacks: Stacks) -> int:
    """Executions the sampler caught the task in: those its own function was seen
    in (the root with the most time), else, with no such field, every one."""
    roots: dict[str, int] = defaultdict(int)
    for stack, us in stacks.items():
        roots[stack[0]] += us
    if not roots:
        return 0
    root = min(roots, key=lambda label: (-roots[label], label))
    seen = profile.executions_seen.get(root, 0)
    return min(seen, profile.executions) if seen else profile.executions


def _setup_like(label: str, stacks: Stacks) -> bool:
    """Whether ``label``'s name says setup, or every stack it is in runs under a
    function (other than the task's own) whose name does."""
    if _says_setup(label):
        return True
    under = [stack[1 : stack.index(label)] for stack in stacks if label in stack]
    return all(any(_says_setup(caller) for caller in callers) for callers in under)


def _says_setup(label: str) -> bool:
    frame = Frame.parse(label)
    return looks_like_setup(frame.name, library=_installed(frame.path))


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
    path = path.replace("\\", "/")
    return path.startswith(_LIBRARY_STARTS) or any(mark in path for mark in _LIBRARY_PATHS)
