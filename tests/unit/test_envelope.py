"""The wire format: a JSON task message and result record, optionally HMAC-signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec
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
Dumps = Callable[[Any], str]


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

    assert body["v"] == 1


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


def sign_like_another_language(message: dict[str, Any], key: bytes, dumps: Dumps) -> bytes:
    """docs/protocol.md's recipe, with nothing but a JSON encoder and HMAC."""
    message["headers"] = {**message.get("headers", {}), SIGNATURE_HEADER: ""}
    unsigned = dumps(message).encode()
    message["headers"][SIGNATURE_HEADER] = hmac.new(key, unsigned, hashlib.sha256).hexdigest()
    return dumps(message).encode()


def go_dumps(message: Any) -> str:
    """Go's encoding/json: sorted keys, no spaces, UTF-8 as is, <>& escaped."""
    text = json.dumps(message, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


FOREIGN = {
    # JSON.stringify: no spaces, UTF-8 as is, 1e20 written out as 100000000000000000000.
    "javascript": (lambda m: json.dumps(m, ensure_ascii=False, separators=(",", ":")),
                   ["héllo ✓", 10**20, 0.5]),
    # Python's defaults: ", " and ": ", non-ASCII escaped, 1e20 as 1e+20.
    "python": (json.dumps, ["héllo ✓", 1e20, 1e-07]),
    "go": (go_dumps, ["<b>héllo</b> & ✓", 1e20, 0.5]),
}


@pytest.mark.parametrize("language", FOREIGN)
def test_a_message_signed_in_another_language_with_its_own_json_encoder_is_accepted(
    language: str,
) -> None:
    dumps, args = FOREIGN[language]
    message = {"id": "x1", "task": "tasks.add", "args": args, "kwargs": {"ключ": "值"},
               "enqueued_at": time.time(), "headers": {"trace": "é"}}

    decoded = decode(sign_like_another_language(message, KEY, dumps), KEY)

    assert (decoded.args, decoded.kwargs, decoded.headers["trace"]) == (args, {"ключ": "值"}, "é")


def test_a_message_signed_in_another_language_then_changed_is_refused() -> None:
    body = sign_like_another_language({"id": "x1", "task": "tasks.add", "args": [1e20]}, KEY, json.dumps)

    with pytest.raises(DecodeError, match="bad signature"):
        decode(body.replace(b"1e+20", b"2e+20"), KEY)


def test_a_message_signed_the_former_way_is_still_accepted() -> None:
    """hurtle used to sign the message re-encoded without the header: what was sent
    before an upgrade still runs after it."""
    envelope = full_envelope()
    former = hmac.new(KEY, msgspec.json.encode(envelope), hashlib.sha256).hexdigest()
    envelope.headers[SIGNATURE_HEADER] = former

    assert decode(msgspec.json.encode(envelope), KEY).args == full_envelope().args


@pytest.mark.parametrize(
    "signature",
    ["é" * 64, "\x00" * 64, "A" * 64, "0" * 63, "0" * 65, "", "0x" + "0" * 62],
    ids=["non-ascii", "nul", "uppercase", "short", "long", "empty", "prefixed"],
)
def test_a_signature_that_is_not_64_lowercase_hex_digits_is_refused(signature: str) -> None:
    envelope = full_envelope()
    envelope.headers[SIGNATURE_HEADER] = signature

    with pytest.raises(DecodeError, match="bad signature"):
        decode(encode(envelope), KEY)


def test_a_signature_moved_into_the_arguments_is_refused() -> None:
    body = encode(Envelope(id="x1", task="tasks.add", args=["", ""]), KEY)
    signature = json.loads(body)["headers"][SIGNATURE_HEADER]
    moved = body.replace(f'"{signature}"'.encode(), b'""').replace(b'["",', f'["{signature}",'.encode())

    with pytest.raises(DecodeError, match="bad signature"):
        decode(moved, KEY)


# -- how old a signed message may be ----------------------------------------------------


def signed(seconds_ago: float, *, delay: float | None = None) -> bytes:
    sent = make_envelope("tasks.add", [1], {}, queue="q", delay=delay, now=time.time() - seconds_ago)
    return encode(sent, KEY)


def test_a_signed_message_within_max_age_is_accepted() -> None:
    assert decode(signed(seconds_ago=10.0), KEY, max_age=300.0).args == [1]


def test_an_old_signed_message_is_refused_as_a_replay() -> None:
    with pytest.raises(DecodeError, match=r"possible replay: due 60\ds ago, beyond signature_max_age=300s"):
        decode(signed(seconds_ago=600.0), KEY, max_age=300.0)


def test_a_signed_message_from_the_future_is_refused() -> None:
    with pytest.raises(DecodeError, match=r"possible replay: due 60\ds from now"):
        decode(signed(seconds_ago=-600.0), KEY, max_age=300.0)


def test_a_delayed_signed_message_ages_from_its_eta() -> None:
    """Sent an hour ago with an hour's delay: it is due now, not an hour old."""
    assert decode(signed(seconds_ago=3600.0, delay=3600.0), KEY, max_age=300.0).args == [1]


def test_a_signed_message_without_enqueued_at_is_refused_when_ages_count() -> None:
    body = sign_like_another_language({"id": "x1", "task": "tasks.add"}, KEY, json.dumps)

    assert decode(body, KEY).id == "x1"
    with pytest.raises(DecodeError, match="possible replay"):
        decode(body, KEY, max_age=300.0)


def test_max_age_needs_no_signature_to_be_read_first() -> None:
    """An unsigned or forged message is refused for its signature, not its age."""
    with pytest.raises(DecodeError, match="unsigned message refused"):
        decode(encode(Envelope(id="x1", task="tasks.add")), KEY, max_age=300.0)
    with pytest.raises(DecodeError, match="bad signature"):
        decode(encode(Envelope(id="x1", task="tasks.add"), b"other key"), KEY, max_age=300.0)


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


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"id": 1}',
        b'{"v":1,"id":"x","status":"succeeded","value":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["garbage", "wrong types", "nested too deep"],
)
def test_a_stored_result_that_is_not_a_result_record_raises_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="undecodable result record"):
        decode_result(body)
