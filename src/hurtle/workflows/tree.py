"""A workflow's tree with each part's state and times: what ``hurtle status task``
shows for a workflow's id.

The tree is kept when the workflow is sent (``flow:tree:<id>`` in the record
store, as long as the workflow's state); each part's state is read as a task's
is (``hurtle.task_status``): the result records of every step and group in one
lookup, then the broker's queues, in one look, for the parts without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from hurtle.brokers import Broker
from hurtle.envelope import DecodeError, Result, decode_result
from hurtle.records import RecordStore
from hurtle.results import ResultStore
from hurtle.task_status import TaskStatus
from hurtle.workflows.advance import tree_key
from hurtle.workflows.wire import ChainNode, GroupNode, Node, StepNode

_node_decoder = msgspec.json.Decoder(Node)


@dataclass
class FlowPart:
    """One part of a workflow: a step, a chain or a group, with what is known of it."""

    #: A chord is a chain of a group and the step given its results.
    kind: Literal["step", "chain", "chord", "group", "on_failure"]
    id: str | None  # a chain has none of its own
    task: str | None  # a step's
    state: TaskStatus
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    children: list[FlowPart] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind, "id": self.id, "task": self.task, "state": self.state,
            "started_at": self.started_at, "finished_at": self.finished_at, "error": self.error,
            "children": [c.as_json() for c in self.children],
        }


async def read_tree(
    broker: Broker, results: ResultStore | None, store: RecordStore, root: str
) -> FlowPart | None:
    """The workflow ``root``'s tree, its parts' states read now; None when no
    workflow of that id is kept."""
    raw = await store.get(tree_key(root))
    if raw is None:
        return None
    try:
        node = _node_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"undecodable workflow record: {exc}") from None
    ids = _ids(node)
    records = {} if results is None else await results.get_many(ids)
    found = {i: _decode(r) for i, r in records.items()}
    waiting = [i for i in ids if i not in found]
    located = await broker.locate(waiting) if waiting else {}
    return _part(node, found, dict(located))


def _ids(node: Node) -> list[str]:
    if isinstance(node, StepNode):
        return [node.id]
    if isinstance(node, ChainNode):
        return [i for n in node.nodes for i in _ids(n)]
    handler = [] if node.on_failure is None else [node.on_failure.id]
    return [node.id, *(i for n in node.members for i in _ids(n)), *handler]


def _decode(record: bytes) -> Result | None:
    try:
        return decode_result(record)
    except DecodeError:
        return None


def _part(node: Node, found: dict[str, Result | None], located: dict[str, TaskStatus]) -> FlowPart:
    if isinstance(node, StepNode):
        return _step(node, "step", found, located)
    if isinstance(node, ChainNode):
        children = [_part(n, found, located) for n in node.nodes]
        chord = len(node.nodes) == 2 and isinstance(node.nodes[0], GroupNode)
        return _around("chord" if chord else "chain", None, children, None)
    children = [_part(n, found, located) for n in node.members]
    if node.on_failure is not None:
        children.append(_step(node.on_failure, "on_failure", found, located))
    return _around("group", node.id, children, found.get(node.id))


def _step(
    node: StepNode, kind: Literal["step", "on_failure"], found: dict[str, Result | None],
    located: dict[str, TaskStatus],
) -> FlowPart:
    result = found.get(node.id)
    if result is None:
        return FlowPart(kind, node.id, node.task, located.get(node.id, "unknown"))
    return FlowPart(
        kind, node.id, node.task, result.status, result.started_at or None, result.finished_at or None,
        result.error or None,
    )


def _around(
    kind: Literal["chain", "chord", "group"], part_id: str | None, children: list[FlowPart],
    result: Result | None,
) -> FlowPart:
    """A chain's or group's state: its own record's when it has one (a group's),
    else what its parts say: failed if one failed, succeeded if all did, running
    once any started, queued while they wait."""
    started = [c.started_at for c in children if c.started_at is not None]
    finished = [c.finished_at for c in children if c.finished_at is not None]
    parts = [c for c in children if c.kind != "on_failure"]
    states = {c.state for c in parts}
    state: TaskStatus
    if result is not None:
        state = result.status
    elif "failed" in states:
        state = "failed"
    elif states == {"succeeded"}:
        state = "succeeded"
    elif states & {"running", "succeeded"}:
        state = "running"
    elif "queued" in states:
        state = "queued"
    else:
        state = "unknown"
    done = state in ("succeeded", "failed") and finished
    return FlowPart(
        kind, part_id, None, state, min(started) if started else None, max(finished) if done else None,
        result.error or None if result is not None else None, children,
    )
