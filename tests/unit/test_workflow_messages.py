"""What a workflow puts on the wire: its steps' messages, their links, and the
version that makes a worker which cannot follow the links refuse them."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest

import hurtle
from hurtle import envelope as envelope_module
from hurtle.brokers import Delivery
from hurtle.envelope import DecodeError, Envelope, decode, encode
from hurtle.worker.dispatcher import Dispatcher
from hurtle.worker.outcome import DeadLetter
from hurtle.workflows.plan import NO_INPUT, start
from hurtle.workflows.wire import ChainNode, Flow, Gather, GroupNode, StepNode, Then, final_id

app = hurtle.App("memory://workflow-messages")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def total(values: list[int]) -> int:
    return sum(values)


def first_messages(canvas: hurtle.workflows.canvas.Canvas[Any, Any]) -> list[Envelope]:
    return start(canvas.node(), NO_INPUT, [], "root", time.time(), copy=False)


def test_a_chain_sends_its_first_step_carrying_the_rest() -> None:
    [first] = first_messages(add.s(1, 2) | add.s(3) | add.s(4))

    assert (first.task, first.args, first.v) == (add.name, [1, 2], 2)
    assert isinstance(first.flow, Flow) and first.flow.root == "root"
    [then] = first.flow.frames
    assert isinstance(then, Then) and [n.args for n in then.rest if isinstance(n, StepNode)] == [[3], [4]]


def test_a_chord_sends_every_member_at_once_each_knowing_its_place() -> None:
    members = first_messages(hurtle.chord([add.s(i, i) for i in range(3)], total.s()))

    gathers = [m.flow.frames[0] for m in members if isinstance(m.flow, Flow)]
    assert [(g.index, g.total) for g in gathers if isinstance(g, Gather)] == [(0, 3), (1, 3), (2, 3)]
    assert len({g.group for g in gathers if isinstance(g, Gather)}) == 1


def test_a_plain_task_message_stays_version_1_and_carries_no_flow() -> None:
    body = json.loads(encode(add._envelope((1, 2), {})))

    assert body["v"] == 1 and "flow" not in body


def test_a_workflow_message_round_trips_through_the_wire() -> None:
    [first] = first_messages(hurtle.chord([add.s(1, 2) | add.s(3)], total.s()))

    assert decode(encode(first)) == first


class OlderEnvelope(msgspec.Struct, kw_only=True):
    """The envelope as a worker from before workflows declares it (no ``flow``)."""

    v: int = 1
    id: str
    task: str
    args: list[Any] = msgspec.field(default_factory=list)


def test_an_older_envelope_ignores_an_unknown_field_so_a_workflow_step_raises_the_version() -> None:
    # An older worker's decoder drops fields it does not know: had the step said
    # version 1, it would run it and drop the rest of the workflow, silently.
    [first] = first_messages(add.s(1, 2) | add.s(3))
    body = json.loads(encode(first))

    older = msgspec.json.decode(json.dumps({**body, "v": 1}).encode(), type=OlderEnvelope)

    assert (older.task, older.args) == (add.name, [1, 2])
    assert body["v"] == 2


def test_a_worker_that_knows_only_version_1_dead_letters_a_workflow_step_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [first] = first_messages(add.s(1, 2) | add.s(3))
    body = encode(first)
    monkeypatch.setattr(envelope_module, "PROTOCOL_VERSION", 1)

    with pytest.raises(DecodeError, match="version 2 is newer than 1"):
        decode(body)
    outcome, _ = Dispatcher(app.tasks, max_deliveries=5, secret_key=None).prepare(
        Delivery("default", body, 1, None)
    )
    assert isinstance(outcome, DeadLetter) and "version 2 is newer than 1" in outcome.reason


def test_the_final_id_is_the_last_step_of_the_outermost_chain_or_its_group() -> None:
    last = StepNode(id="last", task="t")
    chain = ChainNode([StepNode(id="a", task="t"), last])

    assert final_id([Then([chain])], "me") == "last"
    assert final_id([Gather("g", 0, 2), Then([last])], "me") == "last"
    assert final_id([Then([last]), Gather("g", 0, 2)], "me") == "g"
    assert final_id([Then([GroupNode(id="grp", members=[last])])], "me") == "grp"
    assert final_id([], "me") == "me"


def test_an_empty_group_or_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        hurtle.group([])
    with pytest.raises(ValueError, match="at least one"):
        hurtle.chain()


def test_a_first_step_missing_an_argument_is_refused_at_send() -> None:
    with pytest.raises(TypeError):
        (add.s(1) | add.s(2)).send()


@pytest.mark.parametrize(
    ("flow", "reason"),
    [
        ({"root": "r", "frames": [{"type": "gather", "group": "g", "index": 3, "total": 3}]},
         "member index 3"),
        ({"root": "r", "frames": [{"type": "gather", "group": "g", "index": 0, "total": 0}]},
         "member index 0"),
        ({"root": "r", "frames": [{"type": "then", "rest": []}]}, "rest is empty"),
        ({"root": "r", "frames": [{"type": "then", "rest": [{"type": "group", "id": "g", "members": []}]}]},
         "no members"),
        ({"root": "r", "frames": [{"type": "then", "rest": [{"type": "chain", "nodes": []}]}]}, "no steps"),
        ({"root": "r", "frames": [{"type": "fork"}]}, "undecodable"),
    ],
)
def test_a_workflow_step_whose_links_cannot_be_followed_is_dead_lettered_saying_why(
    flow: dict[str, Any], reason: str,
) -> None:
    body = json.dumps({"v": 2, "id": "x1", "task": add.name, "args": [1, 2], "flow": flow}).encode()

    outcome, _ = Dispatcher(app.tasks, max_deliveries=5, secret_key=None).prepare(
        Delivery("default", body, 1, None)
    )

    assert isinstance(outcome, DeadLetter) and reason in outcome.reason
