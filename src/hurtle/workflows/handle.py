"""``FlowHandle``: what a workflow's ``send`` returns.

Its ``id`` is the workflow's own: the final result is kept under it (as under
the last step's id), so ``result()`` and ``status()`` work as on any handle,
and ``hurtle status task ID`` shows the workflow's tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from hurtle.task import Handle
from hurtle.task_status import TaskStatus
from hurtle.workflows.wire import ChainNode, GroupNode, Node, StepNode, last_id

if TYPE_CHECKING:
    from hurtle.app import App

R = TypeVar("R")


class FlowHandle(Handle[R]):
    """A sent workflow: its final result, and handles to its parts (``children``)."""

    __slots__ = ("_children_at", "node")

    def __init__(self, app: App, task_id: str, node: Node, children_at: int = 0) -> None:
        super().__init__(app, task_id, _result_task(node))
        self.node = node
        self._children_at = children_at

    def __repr__(self) -> str:
        return f"<FlowHandle {self.id}>"

    async def result_async(self, timeout: float | None = 10.0) -> R:
        value = await super().result_async(timeout)
        final = _final(self.node)
        if isinstance(final, GroupNode) and isinstance(value, list) and len(value) == len(final.members):
            # A group's list, converted member by member where a member is a step whose task is here.
            converted = [_convert(self.app, m, v) for m, v in zip(final.members, value, strict=True)]
            return converted  # type: ignore[return-value]
        return value

    async def cancel_async(self) -> None:
        """Cancel every step of the workflow not finished yet: a queued step never
        runs and fails its workflow, so nothing after it starts (docs/workflows.md)."""
        from hurtle.schedule.cancel import request_cancel
        from hurtle.workflows.plan import steps
        from hurtle.workflows.send import records_of

        store = records_of(self.app, self.app.client.connection())
        await request_cancel(store, [s.id for s in steps(self.node)], self.app.result_ttl)

    async def status_async(self) -> TaskStatus:
        """The workflow's state: its final result's once it has one, else what its
        parts say (``hurtle.workflows.tree``): queued, running, or failed."""
        status = await super().status_async()
        if status != "unknown":
            return status
        from hurtle.workflows.send import records_of
        from hurtle.workflows.tree import read_tree

        connection = self.app.client.connection()
        store = records_of(self.app, connection)
        tree = await read_tree(connection.broker, connection.results, store, self.id)
        return "unknown" if tree is None else tree.state

    @property
    def children(self) -> list[Handle[Any]]:
        """The handles of a chain's steps, a group's members, a chord's members, in
        order: a nested chain or group has a ``FlowHandle`` of its own."""
        node = self.node
        if self._children_at and isinstance(node, ChainNode):
            node = node.nodes[0]
        if isinstance(node, ChainNode):
            return [part_handle(self.app, n) for n in node.nodes]
        if isinstance(node, GroupNode):
            return [part_handle(self.app, n) for n in node.members]
        return []


def part_handle(app: App, node: Node) -> Handle[Any]:
    """A handle to one part of a workflow: a step's own, or a nested node's (its
    result kept under its last step's id, or its group's)."""
    if isinstance(node, StepNode):
        return Handle(app, node.id, node.task)
    return FlowHandle(app, last_id(node), node)


def _final(node: Node) -> StepNode | GroupNode:
    while isinstance(node, ChainNode):
        node = node.nodes[-1]
    return node


def _result_task(node: Node) -> str:
    """The task whose return type the final result has ("" for a group's list)."""
    final = _final(node)
    return final.task if isinstance(final, StepNode) else ""


def _convert(app: App, member: Node, value: Any) -> Any:
    final = _final(member)
    task = app.tasks.get(final.task) if isinstance(final, StepNode) else None
    return value if task is None else task.types.convert_result(value)
