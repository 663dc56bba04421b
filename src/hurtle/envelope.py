"""The wire format: one task message, one result record.

Both are JSON objects (documented field by field in ``docs/protocol.md``) so a
program in any language can publish a task or read a result. The encoder and
decoders are built once at import and reused: msgspec's own advice for speed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from hurtle.workflows.wire import Flow

#: The newest protocol version this hurtle reads. It writes each message with the
#: oldest version that can run it: 1 for a plain task, 2 for a workflow step.
PROTOCOL_VERSION = 2
PLAIN_VERSION = 1
SIGNATURE_HEADER = "hurtle-sig"


class Envelope(msgspec.Struct, kw_only=True):
    """One task message. The broker adds the delivery count; it is not in the body.

    hurtle writes every field, so each message states its version; a message
    from elsewhere may leave optional fields out (``v`` then reads as 1).
    """

    v: int = 1
    id: str
    task: str
    queue: str = "default"
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    enqueued_at: float = 0.0
    eta: float | None = None
    timeout: float | None = None
    attempt: int = 0
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: A workflow step's links (``hurtle.workflows.wire``); left out of plain messages.
    flow: Flow | msgspec.UnsetType = msgspec.UNSET


class Result(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a finished task left behind, keyed by the task id."""

    v: int = 1
    id: str
    status: Literal["succeeded", "failed", "cancelled"]
    value: Any = None
    error: str = ""
    traceback: str = ""
    attempt: int = 0
    ready_at: float = 0.0  # when this attempt could first run: its eta, else when it was sent
    started_at: float = 0.0
    finished_at: float = 0.0
    worker: str = ""


class DecodeError(ValueError):
    """The bytes are not a valid hurtle message; the text says why."""


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)
_result_decoder = msgspec.json.Decoder(Result)


def new_id() -> str:
    """A unique task id: 32 hex digits, 128 random bits."""
    # Not ``uuid4().hex``: building the UUID object was 31% of ``send_many``'s time
    # (docs/benchmarks.md, Redis).
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` ids from one ``urandom`` call (a batch of ``send_many``)."""
    digits = os.urandom(16 * count).hex()
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def make_envelope(
    task: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    queue: str,
    delay: float | None = None,
    eta: float | None = None,
    timeout: float | None = None,
    task_id: str | None = None,
    now: float | None = None,
) -> Envelope:
    """``task_id`` and ``now`` let a batch draw its ids and read the clock once;
    ``eta`` (unix seconds) is an absolute time, ``delay`` seconds from now."""
    if now is None:
        now = time.time()
    return Envelope(
        v=PLAIN_VERSION,
        id=task_id or new_id(),
        task=task,
        queue=queue,
        args=list(args),
        kwargs=kwargs,
        enqueued_at=now,
        eta=eta if eta is not None else (now + delay if delay else None),
        timeout=timeout,
    )


def encode(envelope: Envelope, secret_key: bytes | None = None) -> bytes:
    """Encode for the wire, signed when a secret key is set.

    Raises ``TypeError`` naming the value when an argument is not JSON-encodable.
    """
    if secret_key is None:
        return _encode(envelope)
    # The signature covers these exact bytes with the header empty; filling it in
    # changes nothing else (docs/protocol.md, "Signed messages"). A retry's old
    # signature is overwritten in place.
    signed = msgspec.structs.replace(envelope, headers={**envelope.headers, SIGNATURE_HEADER: ""})
    signed.headers[SIGNATURE_HEADER] = _sign(_encode(signed), secret_key)
    return _encode(signed)


def _encode(envelope: Envelope) -> bytes:
    try:
        return _encoder.encode(envelope)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"task {envelope.task!r}: arguments are not JSON-encodable: {exc}") from None
    except RecursionError:
        raise TypeError(f"task {envelope.task!r}: arguments nest too deeply to encode") from None


def decode(body: bytes, secret_key: bytes | None = None, *, max_age: float | None = None) -> Envelope:
    """Decode and validate; raise ``DecodeError`` with the reason on any defect.

    With ``secret_key``, only a message signed with it passes; with ``max_age``
    too, only one due (its ``eta``, else its ``enqueued_at``) within that many
    seconds of now, so an old signed message replayed into a queue is refused.
    """
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"undecodable message: {exc}") from None
    except RecursionError:
        raise DecodeError("undecodable message: nested too deeply for the decoder to follow") from None
    if envelope.v > PROTOCOL_VERSION:
        raise DecodeError(f"message protocol version {envelope.v} is newer than {PROTOCOL_VERSION}")
    if secret_key is not None:
        _verify(body, envelope, secret_key)
        if max_age is not None:
            _check_age(envelope, max_age)
    return envelope


def _sign(unsigned_body: bytes, secret_key: bytes) -> str:
    return hmac.new(secret_key, unsigned_body, hashlib.sha256).hexdigest()


_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def _verify(body: bytes, envelope: Envelope, secret_key: bytes) -> None:
    """The signature covers the body exactly as received, its one ``"<signature>"``
    written as ``""``: nothing is re-encoded, so any JSON encoder's output checks."""
    signature = envelope.headers.get(SIGNATURE_HEADER)
    if signature is None:
        raise DecodeError("unsigned message refused: the app has a secret_key")
    if not _SIGNATURE.fullmatch(signature):  # (compare_digest raises on non-ASCII text)
        raise DecodeError("bad signature (not 64 lowercase hex digits): message refused")
    quoted = f'"{signature}"'.encode()
    if body.count(quoted) == 1 and hmac.compare_digest(
        signature, _sign(body.replace(quoted, b'""'), secret_key)
    ):
        return
    if hmac.compare_digest(signature, _sign(_legacy_unsigned(envelope), secret_key)):
        return
    raise DecodeError("bad signature: message refused")


def _legacy_unsigned(envelope: Envelope) -> bytes:
    """What hurtle signed before the form above: the message re-encoded without the
    header. Still accepted, so messages sent before an upgrade are not refused."""
    headers = {k: v for k, v in envelope.headers.items() if k != SIGNATURE_HEADER}
    try:
        return _encoder.encode(msgspec.structs.replace(envelope, headers=headers))
    except RecursionError:
        raise DecodeError("bad signature: message refused") from None


def _check_age(envelope: Envelope, max_age: float) -> None:
    due = envelope.eta if envelope.eta is not None else envelope.enqueued_at
    age = time.time() - due
    if not abs(age) <= max_age:
        when = f"{age:.0f}s ago" if age >= 0 else f"{-age:.0f}s from now"
        raise DecodeError(
            f"signed message refused as a possible replay: due {when},"
            f" beyond signature_max_age={max_age:g}s"
        )


def encode_result(result: Result) -> bytes:
    try:
        return _encoder.encode(result)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"task result is not JSON-encodable: {exc}") from None
    except RecursionError:
        raise TypeError("task result nests too deeply to encode") from None


def decode_result(body: bytes) -> Result:
    """Decode a stored result; raise ``DecodeError`` for a record that is not one
    (written by another program, or nested past what the decoder can follow)."""
    try:
        return _result_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"undecodable result record: {exc}") from None
    except RecursionError:
        raise DecodeError("undecodable result record: nested too deeply") from None
