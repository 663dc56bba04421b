"""The typed workflow API: ``Signature``, ``Chain``, ``Group``, ``Chord``.

A workflow node is a ``Canvas[A, R]``: started with a value of type ``A`` (the
result before it, if any), it gives an ``R``. ``a | b`` is a chain whose ``b``
takes ``a``'s result; mypy checks that ``b`` accepts it.

    (resize.s(path) | store.s() | notify.s(user_id)).send()
    hurtle.chord(hurtle.group(fetch.s(u) for u in urls), report.s()).send()

Typing limits (docs/workflows.md): which parameter a ``.s()`` leaves open is
read from the call, so ``.s()`` of a task whose first parameter has a default
may type as "takes a value" where a workflow's first step takes none; and the
arguments a chain's first step needs are checked when it is sent, at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from hurtle.envelope import new_id
from hurtle.errors import ConfigurationError
from hurtle.workflows.wire import ChainNode, GroupNode, Node, StepNode

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.task import Task
    from hurtle.workflows.handle import FlowHandle

A = TypeVar("A", contravariant=True)
A2 = TypeVar("A2", contravariant=True)
R = TypeVar("R", covariant=True)
R2 = TypeVar("R2")
T = TypeVar("T")


class Canvas(Generic[A, R]):
    """A workflow node: takes an ``A`` (the result before it), gives an ``R``."""

    def __or__(self, other: Canvas[R, R2]) -> Chain[A, R2]:
        """This, then ``other`` with this one's result."""
        return Chain(_parts(self) + _parts(other))

    def app(self) -> App:
        """The app the node's tasks belong to (the first step's)."""
        raise NotImplementedError

    def node(self) -> Node:
        """The node on the wire, with fresh ids: each ``send`` is a new workflow."""
        raise NotImplementedError

    def send(self) -> FlowHandle[R]:
        """Send the workflow; returns at once with a handle to its final result."""
        from hurtle.workflows.send import send

        return send(self.app(), self.node(), self._children())

    async def send_async(self) -> FlowHandle[R]:
        from hurtle.workflows.send import send_async

        return await send_async(self.app(), self.node(), self._children())

    def _children(self) -> int:
        """Which node's members a handle's ``children`` are: 0 the node itself, 1 a
        chord's group (its first part)."""
        return 0


class Signature(Canvas[A, R]):
    """One task call, its arguments given but for the value piped in (``Task.s``),
    or all of them and ignoring that value (``Task.si``)."""

    def __init__(
        self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], immutable: bool
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.immutable = immutable

    def __repr__(self) -> str:
        call = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.task.name}.{'si' if self.immutable else 's'}({call})"

    def app(self) -> App:
        return self.task.app

    def node(self) -> StepNode:
        opts = self.task.opts
        return StepNode(
            id=new_id(), task=self.task.name, args=list(self.args), kwargs=dict(self.kwargs),
            queue=opts.queue, timeout=opts.timeout, immutable=self.immutable,
        )


class Signature2(Signature[NoReturn, R], Generic[A, A2, R]):
    """What ``.s()`` is, to mypy, for a task whose first two parameters it leaves
    open: a chord's ``on_failure`` handler, called with the failed member's id
    and error. (At run time ``.s()`` makes a ``Signature``.)"""


class Chain(Canvas[A, R]):
    """Nodes one after another, each given the result of the one before."""

    def __init__(self, parts: list[Canvas[Any, Any]]) -> None:
        if not parts:
            raise ValueError("a chain needs at least one step")
        self.parts = parts

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.parts))

    def app(self) -> App:
        return self.parts[0].app()

    def node(self) -> ChainNode:
        return ChainNode([part.node() for part in self.parts])


class Group(Canvas[A, list[T]]):
    """Nodes run at once; its result is the list of theirs, in order."""

    def __init__(self, members: Iterable[Canvas[A, T]]) -> None:
        self.members: list[Canvas[A, T]] = list(members)
        if not self.members:
            raise ValueError("a group needs at least one member")
        self.on_failure: Signature[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"group({', '.join(map(repr, self.members))})"

    def app(self) -> App:
        return self.members[0].app()

    def node(self) -> GroupNode:
        handler = None if self.on_failure is None else self.on_failure.node()
        return GroupNode(id=new_id(), members=[m.node() for m in self.members], on_failure=handler)


class Chord(Canvas[A, R]):
    """A group, then a callback given the list of the members' results, in order."""

    def __init__(
        self, header: Group[A, T], callback: Canvas[list[T], R],
        on_failure: Signature[Any, Any] | None = None,
    ) -> None:
        self.header = Group(header.members)
        self.header.on_failure = on_failure if on_failure is not None else header.on_failure
        self.callback = callback

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.callback!r})"

    def app(self) -> App:
        return self.header.app()

    def node(self) -> ChainNode:
        return ChainNode([self.header.node(), self.callback.node()])

    def _children(self) -> int:
        return 1


def group(members: Iterable[Canvas[A, T]]) -> Group[A, T]:
    """Run ``members`` at once: ``hurtle.group(fetch.s(u) for u in urls)``."""
    return Group(members)


def chord(
    header: Group[A, T] | Iterable[Canvas[A, T]], callback: Canvas[list[T], R2], *,
    on_failure: Signature2[str, str, object] | Signature[object, object] | None = None,
) -> Chord[A, R2]:
    """Run ``header``'s members at once, then ``callback`` with their results in
    order. A member that fails for good fails the chord: ``callback`` never runs
    and ``on_failure`` (if given) is called once, with that member's id and error."""
    members = header if isinstance(header, Group) else Group(header)
    if on_failure is not None and not isinstance(on_failure, Signature):
        raise ConfigurationError(f"on_failure must be a task's signature (handler.s()), not {on_failure!r}")
    return Chord(members, callback, on_failure)


def chain(*parts: Canvas[Any, Any]) -> Chain[Any, Any]:
    """``chain(a, b, c)`` is ``a | b | c``, for a number of steps known at run time
    (typed loosely: ``|`` checks each link, this cannot)."""
    return Chain([p for part in parts for p in _parts(part)])


def _parts(canvas: Canvas[Any, Any]) -> list[Canvas[Any, Any]]:
    return list(canvas.parts) if isinstance(canvas, Chain) else [canvas]
