"""Task arguments as the pages show them: cut to a width, or hidden (``--hide-args``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

HIDDEN = "(hidden)"


def args_json(args: Sequence[Any], kwargs: Mapping[str, Any], hide: bool, width: int) -> str:
    """``args`` and ``kwargs`` as one line of JSON of at most ``width`` characters
    (then cut, saying how long it was); ``HIDDEN`` alone with ``hide``, whatever they hold."""
    if hide:
        return HIDDEN
    text = msgspec.json.encode({"args": list(args), "kwargs": dict(kwargs)}, enc_hook=repr).decode()
    if len(text) > width:
        return f"{text[:width]}… ({len(text)} characters)"
    return text
