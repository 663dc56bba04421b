"""hurtle: a fast distributed task queue for Python.

    app = hurtle.App()              # sqlite:///hurtle.db unless $HURTLE_BROKER says otherwise

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.send(1, 2).result(timeout=10.0)   # run `hurtle worker tasks` to get 3
"""

from hurtle.app import App
from hurtle.context import TaskContext, current_task
from hurtle.envelope import PROTOCOL_VERSION, Envelope
from hurtle.errors import (
    BrokerError,
    ConfigurationError,
    HurtleError,
    MessageTooLarge,
    Retry,
    TaskCancelled,
    TaskFailed,
    TimeLimitExceeded,
)
from hurtle.progress import Progress
from hurtle.retry import Backoff, Constant, Exponential
from hurtle.task import Handle, Task
from hurtle.task_status import TaskStatus
from hurtle.urls import SecretURL
from hurtle.workflows.canvas import Chain, Chord, Group, Signature, chain, chord, group
from hurtle.workflows.handle import FlowHandle

__all__ = [
    "PROTOCOL_VERSION",
    "App",
    "Backoff",
    "BrokerError",
    "Chain",
    "Chord",
    "ConfigurationError",
    "Constant",
    "Envelope",
    "Exponential",
    "FlowHandle",
    "Group",
    "Handle",
    "HurtleError",
    "MessageTooLarge",
    "Progress",
    "Retry",
    "SecretURL",
    "Signature",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskStatus",
    "TimeLimitExceeded",
    "chain",
    "chord",
    "current_task",
    "group",
]
