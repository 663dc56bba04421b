"""Every exception a hurtle user can catch.

    HurtleError
    ├── ConfigurationError        bad URL, unknown option, missing result store
    ├── BrokerError               the broker refused or could not be reached
    │   └── BrokerDataError       it is up, but refused this data (a malformed record,
    │                             a key of the wrong type): not an outage
    ├── MessageTooLarge           refused at send: over ``max_message_bytes``
    ├── TaskFailed                the task raised; ``.traceback`` is the remote text
    └── TaskCancelled             the task was cancelled (``Handle.cancel``)

    Retry                         raise it from a task to ask for a retry

    BaseException
    └── TimeLimitExceeded         raised inside a task whose time limit passed;
        │                         a BaseException so ``except Exception`` in user
        │                         code cannot swallow it
        └── EventLoopBlocked      raised inside an async task that held its
                                  process's event loop past the limit

``TimeoutError`` (the builtin) is raised by ``Handle.result`` when no result came
in time.
"""

from __future__ import annotations


class HurtleError(Exception):
    """Base class of hurtle's own errors."""


class ConfigurationError(HurtleError):
    """A setting, URL or option is wrong; the message says which and how to fix it."""


class BrokerError(HurtleError):
    """The broker could not be reached or refused an operation."""


class BrokerDataError(BrokerError):
    """The broker is reachable but refused an operation because of data: a record it
    holds is malformed, a key holds the wrong type. Waiting will not mend it, and a
    worker never counts it as time without its broker (``--max-disconnect``)."""


class MessageTooLarge(HurtleError):
    """An encoded message is larger than the app's ``max_message_bytes``."""


class TaskFailed(HurtleError):
    """The task ran and failed for good; ``traceback`` holds the worker's text."""

    def __init__(self, task_id: str, error: str, traceback: str) -> None:
        super().__init__(f"task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error
        self.traceback = traceback


class TaskCancelled(HurtleError):
    """The task was cancelled before it finished (``Handle.cancel``, ``hurtle cancel``)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} was cancelled")
        self.task_id = task_id


class Retry(Exception):
    """Raise from a task to retry it after ``delay`` seconds (or its backoff)."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay


class TimeLimitExceeded(BaseException):
    """The task ran past its time limit."""


class EventLoopBlocked(TimeLimitExceeded):
    """The async task blocked its process's event loop past the limit; the message
    says for how long and where."""
