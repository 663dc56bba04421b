"""Fold hurtle's own frames out of a profile's stacks, as every view shows them.

The stacks a worker keeps start at the task's own function, and may pass
through plumbing (hurtle's own frames, asyncio's and threading's, marked with
``~``), which says nothing about the task. Views drop those frames unless asked
for every frame; time seen on plumbing alone goes to the task's own function,
so the total stays what the sampler saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from hurtle.profiling.record import PLUMBING

Stacks = Mapping[tuple[str, ...], int]


def fold(stacks: Stacks, all_frames: bool) -> dict[tuple[str, ...], int]:
    """``stacks`` with every plumbing frame dropped (kept as they are with
    ``all_frames``); stacks that become equal add up. A stack of plumbing alone
    is credited to the task's own function: the first frame of its own that the
    stacks show, the one with the most time if the stacks disagree. Without any
    such frame the stack keeps its root, so no time is lost."""
    if all_frames:
        return {stack: time for stack, time in stacks.items() if stack}
    task_root = _task_root(stacks)
    folded: Counter[tuple[str, ...]] = Counter()
    for stack, time in stacks.items():
        if not stack:
            continue
        own = tuple(frame for frame in stack if not frame.startswith(PLUMBING))
        if not own:
            own = (task_root,) if task_root is not None else stack[:1]
        folded[own] += time
    return dict(folded)


def _task_root(stacks: Stacks) -> str | None:
    """The first frame not of the plumbing that carries the most time."""
    roots: Counter[str] = Counter()
    for stack, time in stacks.items():
        first = next((frame for frame in stack if not frame.startswith(PLUMBING)), None)
        if first is not None:
            roots[first] += time
    if not roots:
        return None
    # Ties go to the label that sorts first, so the result never depends on dict order.
    return min(roots, key=lambda frame: (-roots[frame], frame))
