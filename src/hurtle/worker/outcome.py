"""What running a message came to, as a value: executors return one, and
``Settler`` (in ``settle.py``) turns it into ack, retry or dead-letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Succeeded:
    value: Any


@dataclass(slots=True)
class Failed:
    """The task raised. ``retryable`` is False when running it again cannot help."""

    error: str
    traceback: str
    retryable: bool = True
    delay: float | None = None  # set by hurtle.Retry(delay=...)
    #: What the task raised (None when the worker failed it): its retry policy reads it.
    exception: type[BaseException] | None = None


@dataclass(slots=True)
class DeadLetter:
    """Bad input: never run, never retried blindly."""

    reason: str


@dataclass(slots=True)
class Cancelled:
    """Cancelled (``Handle.cancel``): acknowledged with a ``cancelled`` result,
    never retried, never dead-lettered."""


Outcome = Succeeded | Failed | DeadLetter | Cancelled
