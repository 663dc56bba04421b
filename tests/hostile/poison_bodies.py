"""Hypothesis strategies for the bodies a hostile or careless producer writes into a
broker, by class: nesting too deep, non-ASCII and binary headers, a wrong type in
every field and header, extreme numbers. Every ``bad_body`` must be dead-lettered;
every ``odd_innocent`` is valid, however odd, and must run.

A producer may sign what it sends (docs/protocol.md's recipe, applied to the raw
bytes), so a bad body also reaches the checks that come after the signature's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from hurtle import App
from hurtle.arguments import MAX_NESTING
from hurtle.brokers import Broker, Message
from hurtle.envelope import PROTOCOL_VERSION, SIGNATURE_HEADER
from hurtle.worker.consumer import Consumer

TASK = "hostile.innocent"  # a task that takes any positional arguments
KEY = b"a fuzzed secret"
#: Fixed per run, as every generated id: hypothesis must draw the same bytes again.
SENT_AT = time.time()
_PLACEHOLDER = f'"{SIGNATURE_HEADER}":""'.encode()


@dataclass(frozen=True)
class Body:
    """Bytes for the broker, and what they are (shown when a property fails)."""

    kind: str
    data: bytes

    def __repr__(self) -> str:
        return f"Body({self.kind!r}, {self.data[:200]!r}{'...' if len(self.data) > 200 else ''})"


def sign(body: bytes, key: bytes = KEY) -> bytes:
    """Fill in the one empty ``hurtle-sig`` header of ``body`` with its signature."""
    assert body.count(_PLACEHOLDER) == 1, body[:200]
    signature = hmac.new(key, body, hashlib.sha256).hexdigest()
    return body.replace(_PLACEHOLDER, f'"{SIGNATURE_HEADER}":"{signature}"'.encode())


def encode(message: dict[str, Any], signed: bool, ascii_only: bool = True) -> bytes:
    """``message`` as JSON, with the signature placeholder when ``signed``."""
    if signed:
        message = {**message, "headers": {**message.get("headers", {}), SIGNATURE_HEADER: ""}}
    body = json.dumps(message, ensure_ascii=ascii_only, separators=(",", ":")).encode()
    return sign(body) if signed else body


def valid_message(**fields: Any) -> dict[str, Any]:
    return {"id": "poison", "task": TASK, "args": [], "enqueued_at": SENT_AT, **fields}


# -- JSON values --------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), finite_floats, st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
lists = st.lists(json_values, max_size=3)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
not_str = st.one_of(st.none(), st.booleans(), st.integers(), finite_floats, lists, objects)
not_number = st.one_of(st.none(), st.booleans(), st.text(max_size=8), lists, objects)
not_int = st.one_of(not_number, finite_floats.filter(lambda f: not f.is_integer()))

#: For each field of the envelope, values of a type it never takes.
WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "v": not_int,
    "id": not_str,
    "task": not_str,
    "queue": not_str,
    "args": st.one_of(st.none(), st.booleans(), st.integers(), finite_floats, st.text(max_size=8), objects),
    "kwargs": st.one_of(st.none(), st.booleans(), st.integers(), finite_floats, st.text(max_size=8), lists),
    "enqueued_at": not_number,
    "eta": not_number.filter(lambda v: v is not None),
    "timeout": not_number.filter(lambda v: v is not None),
    "attempt": not_int,
    "headers": st.one_of(not_str.filter(lambda v: not isinstance(v, dict)),
                         st.dictionaries(st.text(max_size=8), not_str, min_size=1, max_size=3)),
}


# -- bad bodies, by class -------------------------------------------------------------------


@st.composite
def nested_too_deep(draw: st.DrawFn, signed: bool) -> Body:
    """Lists or objects nested past the limit (or past any decoder), anywhere."""
    depth = draw(st.one_of(st.integers(MAX_NESTING + 1, 400), st.integers(1_000, 20_000)))
    lists = draw(st.booleans())
    nest = b"[" * depth + b"]" * depth if lists else b'{"k":' * depth + b"1" + b"}" * depth
    where = draw(st.sampled_from(["args", "kwargs", "header", "id", "whole"]))
    if where == "whole":
        return Body("nested too deep: the whole body", nest)
    head = f'{{"id":"poison","task":"{TASK}","enqueued_at":{SENT_AT!r},'.encode()
    headers = b'"headers":{' + (_PLACEHOLDER if signed else b"")
    if where == "args":
        body = head + b'"args":[1,' + nest + b"]," + headers + b"}}"
    elif where == "kwargs":
        body = head + b'"kwargs":{"x":' + nest + b"}," + headers + b"}}"
    elif where == "header":
        body = head + headers + (b"," if signed else b"") + b'"h":' + nest + b"}}"
    else:
        body = b'{"id":' + nest + b',"task":"' + TASK.encode() + b'",' + headers + b"}}"
    return Body(f"nested {depth} deep in {where}", sign(body) if signed else body)


@st.composite
def wrong_type(draw: st.DrawFn, signed: bool) -> Body:
    field = draw(st.sampled_from(sorted(WRONG_TYPES)))
    value = draw(WRONG_TYPES[field])
    message = valid_message(**{field: value})
    if field == "headers":  # no room left for a signature: sent unsigned
        return Body(f"headers: {value!r}", json.dumps(message).encode())
    return Body(f"{field}: {value!r}", encode(message, signed, ascii_only=draw(st.booleans())))


@st.composite
def missing_field(draw: st.DrawFn, signed: bool) -> Body:
    field = draw(st.sampled_from(["id", "task"]))
    message = valid_message()
    del message[field]
    return Body(f"no {field}", encode(message, signed))


@st.composite
def bad_header(draw: st.DrawFn, signed: bool) -> Body:
    """Binary bytes (never valid UTF-8) as a header name or value."""
    raw = draw(st.binary(max_size=16)) + b"\xff"
    head = f'{{"id":"poison","task":"{TASK}","headers":{{'.encode()
    sig = _PLACEHOLDER + b"," if signed else b""
    if draw(st.booleans()):
        body = head + sig + b'"x":"' + raw + b'"}}'
    else:
        body = head + sig + b'"' + raw + b'":"x"}}'
    return Body(f"binary header {raw!r}", sign(body) if signed else body)


@st.composite
def bad_signature(draw: st.DrawFn) -> Body:
    """Any text in ``hurtle-sig`` (non-ASCII, NUL, hex of the wrong key), or none."""
    signature = draw(st.one_of(
        st.none(),
        st.text(max_size=70),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.just(hmac.new(b"another key", b"", hashlib.sha256).hexdigest()),
    ))
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}
    message = valid_message(args=[draw(json_values)], headers=headers)
    return Body(f"signature {signature!r}", encode(message, signed=False, ascii_only=draw(st.booleans())))


@st.composite
def extreme_number(draw: st.DrawFn, signed: bool) -> Body:
    """A number no double holds, a version from the future, or a time limit that is
    not a positive number of seconds."""
    field, text = draw(st.one_of(
        st.tuples(st.sampled_from(["enqueued_at", "eta", "timeout", "attempt", "v", "args"]),
                  st.sampled_from(["1e400", "-1e400", "1e999999999", "-0.1e310"])),
        st.tuples(st.just("v"), st.integers(PROTOCOL_VERSION + 1, 2**80).map(str)),
        st.tuples(st.just("timeout"), st.one_of(st.just(0.0), st.floats(max_value=0.0, allow_nan=False,
                                                                         allow_infinity=False)).map(repr)),
    ))
    message = valid_message(**{field: "@NUMBER@"})
    body = encode(message, signed=False)
    if signed:
        body = body[:-1] + b"," + b'"headers":{' + _PLACEHOLDER + b"}}"
    body = body.replace(b'"@NUMBER@"', (f"[{text}]" if field == "args" else text).encode())
    return Body(f"{field}: {text}", sign(body) if signed else body)


@st.composite
def not_a_message(draw: st.DrawFn, signed: bool) -> Body:
    """Binary garbage, a cut-off message, an unknown task, arguments that don't bind."""
    kind = draw(st.sampled_from(["binary", "truncated", "unknown task", "kwargs"]))
    if kind == "binary":
        return Body(kind, draw(st.binary(max_size=64)) + b"\xff")
    if kind == "truncated":
        whole = encode(valid_message(args=[draw(json_values)]), signed)
        return Body(kind, whole[: draw(st.integers(0, len(whole) - 1))])
    if kind == "unknown task":
        name = draw(st.text(max_size=20).filter(lambda t: t != TASK))
        return Body(f"task {name!r}", encode(valid_message(task=name), signed, ascii_only=False))
    return Body(kind, encode(valid_message(kwargs={"x": 1}), signed))  # the task takes no kwargs


def bad_body(signed: bool) -> st.SearchStrategy[Body]:
    """Any body a worker must dead-letter; ``signed``: the worker has ``KEY``, and the
    producer signs what it can, so the other checks are reached."""
    classes = [nested_too_deep(signed), wrong_type(signed), missing_field(signed), bad_header(signed),
               extreme_number(signed), not_a_message(signed)]
    if signed:
        classes.append(bad_signature())
    return st.one_of(*classes)


# -- odd but valid --------------------------------------------------------------------------


@st.composite
def odd_innocent(draw: st.DrawFn, signed: bool) -> Body:
    """A call to ``TASK`` with extreme numbers, non-ASCII headers and fields, and
    values at the nesting limit: valid, so it must run."""
    args = draw(st.lists(st.one_of(
        st.integers(-(2**80), 2**80),
        st.sampled_from([5e-324, 1.7976931348623157e308, -0.0, 1e20, 1e-7]),
        st.text(max_size=8),
        st.builds(lambda leaf: _tower(MAX_NESTING, leaf), st.integers()),
    ), max_size=3))
    tag = draw(st.uuids()).hex
    message = valid_message(
        id=tag,
        args=[tag, *args],
        queue=draw(st.text(max_size=8)),
        enqueued_at=draw(finite_floats),
        eta=draw(st.none() | finite_floats),
        timeout=draw(st.none() | st.floats(60.0, 1e300)),
        attempt=draw(st.integers(-(2**63), 2**80)),
        headers=draw(st.dictionaries(st.text(max_size=8).filter(lambda k: k != SIGNATURE_HEADER),
                                     st.text(max_size=8), max_size=3)),
        extra=draw(json_values),  # unknown fields are ignored
    )
    return Body("innocent", encode(message, signed, ascii_only=draw(st.booleans())))


def _tower(levels: int, leaf: Any) -> Any:
    for _ in range(levels - 1):
        leaf = [leaf]
    return [leaf]


# -- a worker over a batch --------------------------------------------------------------------


class Batch:
    """Bad bodies and innocent calls written into one queue, and the innocent task
    that notes its runs, on ``app``."""

    def __init__(self, app: App, queue: str, bad: list[Body], innocents: list[Body]) -> None:
        self.app, self.queue, self.bad, self.innocents = app, queue, bad, innocents
        self.runs: list[str] = []

        @app.task(name=TASK, queue=queue)
        def innocent(tag: str, *rest: Any) -> None:
            self.runs.append(tag)

    async def write(self, broker: Broker) -> None:
        """Every body in one enqueue, the innocent ones last: fetched in the same batch."""
        bodies = [*self.bad, *self.innocents]
        await broker.enqueue([Message(uuid.uuid4().hex, self.queue, body.data) for body in bodies])

    async def check(self, consumer: Consumer, broker: Broker) -> None:
        """Each bad body dead-lettered with a reason; each innocent run exactly once."""
        assert consumer.exit_code == 0
        tags = sorted(json.loads(body.data)["args"][0] for body in self.innocents)
        assert sorted(self.runs) == tags
        letters = await broker.dead_letters(self.queue, limit=len(self.bad) + 10)
        assert sorted(letter.body for letter in letters) == sorted(body.data for body in self.bad)
        assert all(letter.reason for letter in letters)
        (stats,) = await broker.stats([self.queue])
        assert stats.pending == 0


def batches(signed: bool) -> st.SearchStrategy[tuple[list[Body], list[Body]]]:
    return st.tuples(st.lists(bad_body(signed), min_size=1, max_size=5),
                     st.lists(odd_innocent(signed), min_size=1, max_size=2))
