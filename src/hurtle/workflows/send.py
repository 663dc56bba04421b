"""Sending a workflow: its first messages, and its tree kept for ``hurtle status``.

A workflow's state lives in the broker's own store (``RecordStore``), apart from
the result store: a chord's member results are kept there whether or not the
tasks store results. A broker that keeps no records (RabbitMQ) uses the app's
``results=`` store; without one, sending a workflow is refused.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from hurtle.client import Connection
from hurtle.envelope import new_id
from hurtle.errors import ConfigurationError
from hurtle.records import RecordStore
from hurtle.workflows.advance import FLOW_TTL, tree_key
from hurtle.workflows.handle import FlowHandle
from hurtle.workflows.plan import NO_INPUT, start
from hurtle.workflows.wire import Node, StepNode

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.brokers import Message

_encoder = msgspec.json.Encoder()


def send(app: App, node: Node, children_at: int) -> FlowHandle[Any]:
    root, messages, tree = _prepare(app, node)
    app.client.run_sync(_enqueue(app, root, tree, messages))
    return FlowHandle(app, root, node, children_at)


async def send_async(app: App, node: Node, children_at: int) -> FlowHandle[Any]:
    root, messages, tree = _prepare(app, node)
    await _enqueue(app, root, tree, messages)
    return FlowHandle(app, root, node, children_at)


def _prepare(app: App, node: Node) -> tuple[str, list[Message], bytes]:
    """The workflow's id, its first messages (arguments checked, encoded) and tree."""

    def check(step: StepNode, args: list[Any]) -> None:
        task = app.tasks.get(step.task)
        if task is not None:
            task.types.check_call(args, step.kwargs)

    root = new_id()
    envelopes = start(node, NO_INPUT, [], root, time.time(), copy=False, check=check)
    return root, app.client.encode(envelopes), _encoder.encode(node)


async def _enqueue(app: App, root: str, tree: bytes, messages: list[Message]) -> None:
    connection = app.client.connection()
    store = records_of(app, connection)
    await store.put(tree_key(root), tree, FLOW_TTL)
    await connection.broker.enqueue(messages)


def records_of(app: App, connection: Connection) -> RecordStore:
    """Where ``connection`` keeps workflow state: its broker's record store, else
    its result store's broker's; ``ConfigurationError`` when neither keeps one."""
    if connection.records is None:
        raise ConfigurationError(
            f"workflows keep their state in the broker's store, and {app.broker_url.scheme} keeps none:"
            " give the app a result store that does, as App(results='redis://...') or"
            " results='sqlite:///results.db'"
        )
    return connection.records
