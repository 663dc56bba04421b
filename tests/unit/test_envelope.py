"""The wire format: a JSON task message and result record, optionally HMAC-signed."""

from __future__ import annotations

import json
import time

import pytest

from hurtle import PROTOCOL_VERSION, Envelope
from hurtle.envelope import (
    SIGNATURE_HEADER,
    DecodeError,
    Result,
    decode,
    decode_result,
    encode,
    encode_result,
    make_envelope,
    new_id,
)

KEY = b"a secret key"


def full_envelope() -> Envelope:
    return Envelope(
        id="0123abcd",
        task="tasks.add",
        queue="io",
        args=[1, "two", [3.5, None]],
        kwargs={"flag": True, "nested": {"k": "v"}},
        enqueued_at=1700000000.25,
        eta=1700000005.5,
        timeout=30.0,
        attempt=2,
        headers={"trace": "abc"},
    )


# -- encode and decode ------------------------------------------------------------


def test_an_envelope_survives_an_encode_decode_round_trip() -> None:
    envelope = full_envelope()

    assert decode(encode(envelope)) == envelope


def test_a_minimal_message_from_another_language_is_accepted() -> None:
    envelope = decode(b'{"v": 1, "id": "x1", "task": "tasks.add", "args": [1, 2]}')

    assert (envelope.id, envelope.task, envelope.args) == ("x1", "tasks.add", [1, 2])
    assert (envelope.queue, envelope.kwargs, envelope.attempt) == ("default", {}, 0)


def test_every_encoded_message_carries_its_protocol_version() -> None:
    body = json.loads(encode(Envelope(id="x1", task="tasks.add")))

    assert body["v"] == PROTOCOL_VERSION


def test_a_message_from_a_newer_protocol_is_refused() -> None:
    newer = encode(Envelope(v=PROTOCOL_VERSION + 1, id="x1", task="tasks.add"))

    with pytest.raises(DecodeError, match="newer"):
        decode(newer)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"task": "tasks.add"}',
        b'{"id": "x1"}',
        b'{"id": 7, "task": "tasks.add"}',
        b'{"id": "x1", "task": "tasks.add", "args": {"x": 1}}',
    ],
)
def test_a_body_that_is_not_a_task_message_is_refused_with_the_reason(body: bytes) -> None:
    with pytest.raises(DecodeError, match="undecodable message"):
        decode(body)


def test_arguments_that_are_not_json_are_refused_naming_the_task() -> None:
    envelope = Envelope(id="x1", task="tasks.add", args=[object()])

    with pytest.raises(TypeError, match=r"task 'tasks.add': arguments are not JSON-encodable"):
        encode(envelope)


def test_make_envelope_stamps_a_unique_id_and_the_eta_of_a_delay() -> None:
    before = time.time()

    now = make_envelope("tasks.add", (1, 2), {}, queue="q")
    later = make_envelope("tasks.add", [], {"x": 1}, queue="q", delay=5.0, timeout=2.0)

    assert now.id != later.id
    assert (now.args, now.eta, now.timeout) == ([1, 2], None, None)
    assert before <= now.enqueued_at <= time.time()
    assert later.eta == pytest.approx(later.enqueued_at + 5.0)
    assert (later.kwargs, later.timeout) == ({"x": 1}, 2.0)


def test_task_ids_are_32_hex_digits_and_unique() -> None:
    ids = {new_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# -- signatures -----------------------------------------------------------------


def test_a_signed_message_decodes_with_the_same_key() -> None:
    envelope = full_envelope()

    decoded = decode(encode(envelope, KEY), KEY)

    assert SIGNATURE_HEADER in decoded.headers
    assert decoded.headers["trace"] == "abc"
    assert (decoded.task, decoded.args, decoded.kwargs) == (
        envelope.task,
        envelope.args,
        envelope.kwargs,
    )


def test_an_unsigned_message_is_refused_when_a_key_is_set() -> None:
    with pytest.raises(DecodeError, match="unsigned message refused"):
        decode(encode(full_envelope()), KEY)


def test_a_message_signed_with_another_key_is_refused() -> None:
    with pytest.raises(DecodeError, match="bad signature"):
        decode(encode(full_envelope(), b"another key"), KEY)


@pytest.mark.parametrize(
    ("field", "value"),
    [("args", [1, "two", [3.5, None], "extra"]), ("task", "tasks.rm"), ("attempt", 0)],
)
def test_a_tampered_signed_message_is_refused(field: str, value: object) -> None:
    body = json.loads(encode(full_envelope(), KEY))
    body[field] = value

    with pytest.raises(DecodeError, match="bad signature"):
        decode(json.dumps(body).encode(), KEY)


def test_a_signature_does_not_depend_on_json_formatting() -> None:
    body = json.loads(encode(full_envelope(), KEY))

    reformatted = json.dumps(body, indent=2).encode()

    assert decode(reformatted, KEY).args == full_envelope().args


def test_a_decoded_signed_message_can_be_signed_again() -> None:
    decoded = decode(encode(full_envelope(), KEY), KEY)
    next_attempt = Envelope(**{**_fields(decoded), "attempt": decoded.attempt + 1})

    assert decode(encode(next_attempt, KEY), KEY).attempt == 3


def _fields(envelope: Envelope) -> dict[str, object]:
    return {name: getattr(envelope, name) for name in envelope.__struct_fields__}


# -- results ----------------------------------------------------------------------


def test_a_result_record_survives_an_encode_decode_round_trip() -> None:
    result = Result(
        id="x1",
        status="failed",
        value=None,
        error="ValueError: boom",
        traceback="Traceback ...",
        attempt=3,
        started_at=1.0,
        finished_at=2.0,
        worker="host:1",
    )

    assert decode_result(encode_result(result)) == result


def test_a_result_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON-encodable"):
        encode_result(Result(id="x1", status="succeeded", value=object()))
