"""Data from a broker, fit to print as it is.

Queue names, reasons, task names and timestamps come from whoever wrote to the
broker: another program, an old version, a hand edit. Printed through Rich, a
reason holding ``[/etc/app.conf]`` was read as a closing tag and crashed
``hurtle dlq list``; printed raw, an escape sequence would reach the terminal.
Here every value becomes a ``rich.text.Text`` (never parsed as markup) with its
control characters spelled out.
"""

from __future__ import annotations

import datetime
import re

from rich.text import Text

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a
# reader sees; tab and (where asked) newline stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def as_text(value: object) -> str:
    """Any value a broker handed back, as text: bytes decoded, invalid bytes spelled out."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value if isinstance(value, str) else str(value)


def literal(value: object, *, lines: bool = False) -> Text:
    """``value`` as Rich text that prints as it is; newlines kept only with ``lines``."""
    control = _CONTROL if lines else _CONTROL_OR_NEWLINE
    text = control.sub(_spelled, as_text(value))
    # A lone surrogate (JSON may carry one) cannot be written as UTF-8: spell it out too.
    text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return Text(text)


def when(timestamp: object) -> Text:
    """A unix time as local date and time; anything else (text, NaN, a time past
    year 9999) as it is."""
    if not isinstance(timestamp, (int, float, str, bytes)):
        return literal(timestamp)
    try:
        shown = datetime.datetime.fromtimestamp(float(timestamp))
    except (ValueError, OverflowError, OSError):
        return literal(timestamp)
    return Text(shown.isoformat(sep=" ", timespec="seconds"))


def _spelled(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
