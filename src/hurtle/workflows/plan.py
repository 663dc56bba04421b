"""From workflow nodes to the messages that start them.

``start`` is used twice: by ``send`` for a workflow's first messages, and by a
worker when a step's result moves the workflow on (``advance``). A node started
with a value (the result before it) passes it on as its first argument: a step
prepends it (unless ``.si()`` made it immutable), a chain gives it to its first
node, a group to every member.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from hurtle.envelope import Envelope, make_envelope
from hurtle.schedule.ticks import COPY_HEADER
from hurtle.workflows.wire import FLOW_VERSION, ChainNode, Flow, Frame, Gather, Node, StepNode, Then


class _NoInput:
    """The value a workflow's first nodes start with: nothing to pass on."""

    def __repr__(self) -> str:
        return "NO_INPUT"


NO_INPUT: Final = _NoInput()

#: Checks a step's arguments before it is sent (the task's own ``check_call``, when
#: the sender has its code); raises ``TypeError``.
CallCheck = Callable[[StepNode, list[Any]], None]


def start(
    node: Node, value: Any, frames: list[Frame], root: str, now: float, *,
    copy: bool, check: CallCheck | None = None,
) -> list[Envelope]:
    """The messages that start ``node`` with ``value`` (``NO_INPUT``: none), whose
    result then goes where ``frames`` say. ``copy``: mark each message as a copy
    (a worker sends it, and may send it again after a crash: one copy runs)."""
    out: list[tuple[StepNode, Envelope]] = []
    _start(node, value, frames, root, now, out)
    for step, envelope in out:
        if copy:
            envelope.headers[COPY_HEADER] = os.urandom(8).hex()
        if check is not None:
            check(step, envelope.args)
    return [envelope for _, envelope in out]


def _start(
    node: Node, value: Any, frames: list[Frame], root: str, now: float,
    out: list[tuple[StepNode, Envelope]],
) -> None:
    if isinstance(node, StepNode):
        out.append((node, step_envelope(node, value, Flow(root, frames), now)))
    elif isinstance(node, ChainNode):
        first, rest = node.nodes[0], node.nodes[1:]
        _start(first, value, [Then(rest), *frames] if rest else frames, root, now, out)
    else:
        total = len(node.members)
        for index, member in enumerate(node.members):
            gather = Gather(node.id, index, total, node.on_failure)
            _start(member, value, [gather, *frames], root, now, out)


def step_envelope(node: StepNode, value: Any, flow: Flow, now: float) -> Envelope:
    """The message of one step, given ``value`` (``NO_INPUT``: none)."""
    args = node.args if value is NO_INPUT or node.immutable else [value, *node.args]
    envelope = make_envelope(
        node.task, args, dict(node.kwargs), queue=node.queue, timeout=node.timeout,
        task_id=node.id, now=now,
    )
    envelope.v = FLOW_VERSION
    envelope.flow = flow
    return envelope


def steps(node: Node) -> list[StepNode]:
    """Every step of ``node``, in order (a chord's handler included)."""
    if isinstance(node, StepNode):
        return [node]
    if isinstance(node, ChainNode):
        return [s for n in node.nodes for s in steps(n)]
    found = [s for n in node.members for s in steps(n)]
    if node.on_failure is not None:
        found.append(node.on_failure)
    return found
