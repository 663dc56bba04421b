"""A workflow on the wire: the nodes still to run, and where a result goes next.

A message that is part of a workflow carries a ``Flow`` in its envelope's
``flow`` field (docs/protocol.md, "Workflows"): the workflow's root id and a
stack of frames, innermost first, that say what becomes of the task's result.

- ``Then(rest)``: the rest of a chain. The result is passed to ``rest[0]``,
  which then carries ``Then(rest[1:])``.
- ``Gather(group, index, total)``: the task is member ``index`` of a group of
  ``total``. Its result is recorded as that member; whoever completes the set
  passes the list of results, in order, to the next frame.

Every step and group has its id from the start (chosen when the workflow is
sent), so a step sent twice, after a crash, is the same task: its copies are
told apart by a claim (``hurtle.schedule.ticks``), and its handle is known
before it runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: The protocol version a message with a ``flow`` states: a worker that knows only
#: version 1 dead-letters it, saying so, rather than running the step and dropping
#: the rest of the workflow.
FLOW_VERSION = 2


class StepNode(msgspec.Struct, tag="step", omit_defaults=True):
    """One task call. ``immutable``: it ignores the result before it (``.si()``)."""

    id: str
    task: str
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str = "default"
    timeout: float | None = None
    immutable: bool = False


class ChainNode(msgspec.Struct, tag="chain"):
    """Nodes run one after another, each given the result of the one before."""

    nodes: list[Node]


class GroupNode(msgspec.Struct, tag="group", omit_defaults=True):
    """Nodes run at once; the group's result is the list of theirs, in order.
    ``on_failure``: called once, with the failed member's id and error, when a
    member fails for good (a chord's handler)."""

    id: str
    members: list[Node]
    on_failure: StepNode | None = None


Node = StepNode | ChainNode | GroupNode


class Then(msgspec.Struct, tag="then"):
    rest: list[Node]


class Gather(msgspec.Struct, tag="gather", omit_defaults=True):
    group: str
    index: int
    total: int
    on_failure: StepNode | None = None


Frame = Then | Gather


class Flow(msgspec.Struct, omit_defaults=True):
    """What a workflow message carries: its workflow's id, and the frames."""

    root: str
    frames: list[Frame] = msgspec.field(default_factory=list)


def last_id(node: Node) -> str:
    """The id whose result is ``node``'s result: its last step's, or its group's."""
    while isinstance(node, ChainNode):
        node = node.nodes[-1]
    return node.id


def final_id(frames: list[Frame], own_id: str) -> str:
    """The id whose result is the whole workflow's, seen from a message with
    ``frames`` and id ``own_id``: the outermost frame decides."""
    for frame in reversed(frames):
        if isinstance(frame, Gather):
            return frame.group
        if frame.rest:
            return last_id(frame.rest[-1])
    return own_id


def flow_problem(flow: Flow) -> str | None:
    """Why ``flow`` cannot be followed (a message from elsewhere), or None. Checked
    before the step runs, so a bad link dead-letters the message, saying why."""
    for frame in flow.frames:
        if isinstance(frame, Gather):
            if not 0 <= frame.index < frame.total:
                return f"flow: member index {frame.index} is not within a group of {frame.total}"
        elif not frame.rest:
            return "flow: a chain's rest is empty"
        else:
            problem = _node_problem(frame.rest)
            if problem is not None:
                return problem
        on_failure = frame.on_failure if isinstance(frame, Gather) else None
        if on_failure is not None and not on_failure.task:
            return "flow: an on_failure step names no task"
    return None


def _node_problem(nodes: list[Node]) -> str | None:
    for node in nodes:
        if isinstance(node, ChainNode):
            if not node.nodes:
                return "flow: a chain has no steps"
            problem = _node_problem(node.nodes)
        elif isinstance(node, GroupNode):
            if not node.members:
                return "flow: a group has no members"
            problem = _node_problem(node.members)
        else:
            problem = None if node.task and node.id else "flow: a step names no task or id"
        if problem is not None:
            return problem
    return None
