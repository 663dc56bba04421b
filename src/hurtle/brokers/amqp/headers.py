"""A message's headers on RabbitMQ: read whatever a producer put there, write them back.

A producer in another language may put any AMQP field type in the headers:
doubles (Java and Go send a float as one), 64-bit integers, byte strings,
decimals, timestamps, nested tables and arrays. hurtle reads two headers of
its own and publishes a message's headers again whenever it moves it (a dead
letter, a counted redelivery, a release, a requeue), so both directions must
take anything:

- Reading never raises. A delivery count that is not a count (``1e19``,
  ``"three"``, a table) is ``UnreadableHeader``: the fetch dead-letters that
  message with the reason instead of failing its whole batch.
- Writing goes through pamqp, which writes every float as a 32-bit ``f``
  (1e300 does not fit, 0.1 loses digits), refuses integers past 64 bits,
  decimals past a 32-bit mantissa and ``bytes``. ``writable`` keeps every
  value pamqp writes exactly, turns byte strings into byte arrays (same
  bytes), and keeps the rest as text, naming each header it changed. Before
  this a message with a 1e300 header could never be dead-lettered.
"""

from __future__ import annotations

import datetime
import decimal
import math
import reprlib
import struct
from collections.abc import Mapping
from typing import Any

from pamqp import commands as spec
from pamqp import decode, encode
from pamqp.common import FieldTable

HURTLE_AT = "hurtle-at"  # when the message is ready, in unix microseconds: fetch's order across queues
DELIVERIES = "hurtle-deliveries"  # deliveries counted before this copy was published
RETURNED = "x-delivery-count"  # a quorum queue's count of returned deliveries
#: Set by the frame reader (``frames``) when pamqp could not decode a message's
#: properties: why, and what was dropped. Such a message is dead-lettered.
UNREADABLE = "hurtle-unreadable"

MAX_COUNT = 2**31 - 1  # a delivery count past this is garbage, not history
_MAX_DEPTH = 32  # tables and arrays nested deeper are kept as text: pamqp writes them recursively
_FLOAT = struct.Struct(">f")
_INT64 = range(-(2**63), 2**63)
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


class UnreadableHeader(ValueError):
    """A header hurtle reads holds something it cannot read; the message is dead-lettered."""


def describe(value: object) -> str:
    """A short, safe description of a header value for a reason or a log line."""
    return f"{type(value).__name__} {_short.repr(value)}"


def _as_int(value: object) -> int | None:
    """``value`` as a whole number, if it plainly is one (not a bool, not a fraction)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def count(headers: Mapping[str, Any], name: str) -> int:
    """The delivery count in header ``name`` (absent: 0); raises ``UnreadableHeader``."""
    value = headers.get(name)
    if value is None:
        return 0
    number = _as_int(value)
    if number is None or not 0 <= number <= MAX_COUNT:
        raise UnreadableHeader(f"header {name!r} holds {describe(value)}, not a delivery count")
    return number


def ready_at(properties: spec.Basic.Properties) -> int:
    """The ``hurtle-at`` header, for ordering only: 0 when absent or unreadable."""
    return _as_int((properties.headers or {}).get(HURTLE_AT)) or 0


def unreadable(properties: spec.Basic.Properties, *, quorum: bool) -> str | None:
    """Why hurtle cannot read this message's delivery headers, or None."""
    headers = properties.headers or {}
    try:
        if UNREADABLE in headers:
            why = headers[UNREADABLE]
            text = why.decode(errors="replace") if isinstance(why, (bytes, bytearray)) else str(why)
            return f"its properties could not be decoded: {text}"
        count(headers, DELIVERIES)
        if quorum:
            count(headers, RETURNED)
    except UnreadableHeader as exc:
        return str(exc)
    return None


def deliveries_before(properties: spec.Basic.Properties, *, quorum: bool) -> int:
    """Deliveries counted before this one (the headers must be readable, see ``unreadable``).
    Only a quorum queue counts returns in ``x-delivery-count``; on a classic queue
    that header is a producer's, and ignored."""
    headers = properties.headers or {}
    return count(headers, DELIVERIES) + (count(headers, RETURNED) if quorum else 0)


# -- writing them back ------------------------------------------------------------------


def own_headers(properties: spec.Basic.Properties) -> FieldTable:
    """A message's headers without RabbitMQ's (``x-death``, ``x-delivery-count``, ...)."""
    return {k: v for k, v in (properties.headers or {}).items() if not k.startswith("x-")}


def writable(headers: Mapping[str, Any]) -> tuple[FieldTable, list[str]]:
    """``headers`` as pamqp writes them exactly, and a note per header that had to change."""
    notes: list[str] = []
    table = {key: _writable(value, key, notes, 0) for key, value in headers.items()}
    return table, notes


def _writable(value: Any, path: str, notes: list[str], depth: int) -> Any:
    if value is None or isinstance(value, (bool, str, bytearray)):
        return value
    if isinstance(value, bytes):
        return bytearray(value)  # the same bytes; pamqp writes bytes only as a byte array
    if depth >= _MAX_DEPTH and isinstance(value, (dict, list)):
        notes.append(f"{path}: nested deeper than {_MAX_DEPTH} levels, dropped")
        return f"(nested deeper than {_MAX_DEPTH} levels: dropped)"
    if isinstance(value, dict):
        return {k: _writable(v, f"{path}.{k}", notes, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_writable(v, f"{path}[{i}]", notes, depth + 1) for i, v in enumerate(value)]
    if _written_exactly(value):
        return value
    text = repr(value) if isinstance(value, float) else str(value)
    notes.append(f"{path}: {describe(value)} kept as text")
    return text


def _written_exactly(value: object) -> bool:
    """True when pamqp writes ``value`` and it reads back the same."""
    try:
        if isinstance(value, int):
            return value in _INT64
        if isinstance(value, float):
            # RabbitMQ refuses NaN and infinities outright (it closes the connection).
            return math.isfinite(value) and _FLOAT.unpack(_FLOAT.pack(value))[0] == value
        if isinstance(value, decimal.Decimal):
            return decode.decimal(encode.decimal(value))[1] == value
        if isinstance(value, datetime.datetime):
            return decode.timestamp(encode.timestamp(value))[1] == value
    except (TypeError, ValueError, OverflowError, struct.error, decimal.DecimalException):
        return False
    return False


def copy_properties(original: spec.Basic.Properties, headers: FieldTable) -> spec.Basic.Properties:
    """Properties to publish a message again with: persistent, with ``headers`` (made
    writable); never ``expiration`` (its TTL would run again) nor ``user_id``
    (RabbitMQ refuses another user's)."""
    table, _ = writable(headers)
    return spec.Basic.Properties(
        content_type=original.content_type, content_encoding=original.content_encoding,
        headers=table, delivery_mode=2, priority=original.priority,
        correlation_id=original.correlation_id, reply_to=original.reply_to,
        message_id=original.message_id, timestamp=original.timestamp,
        message_type=original.message_type, app_id=original.app_id,
    )
