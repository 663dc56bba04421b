"""Queue priorities: which queue a worker's free slots are filled from.

Three modes, chosen by ``hurtle worker -q``:

- default (``-q a,b``): oldest first across the queues, as the broker orders them;
- strict (``-q high,default,low --strict``): the first queue with a ready message
  first, always: ``fetch`` quotas of every free slot for every queue;
- weighted (``-q high:5,default:2,low:1``): each fetch's free slots are dealt to
  the queues by a smooth weighted round-robin (the deal nginx uses for upstream
  weights), whose state carries over from fetch to fetch. Over many fetches
  with every queue full, each queue's share of the messages is its weight's
  share, and every queue gets its turn: a weight of 1 in a total of 8 is every
  eighth message. A queue with nothing ready gives its slots to the others
  (``allot``), so no slot stays empty while work waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class QueueSpecError(ValueError):
    """A ``-q`` value that names no queue, or a weight that is no positive integer."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """The queues a worker consumes, and how it chooses between them."""

    queues: tuple[str, ...]
    #: One positive integer per queue, or None (no weights given).
    weights: tuple[int, ...] | None = None
    strict: bool = False

    @classmethod
    def parse(cls, text: str, *, strict: bool = False) -> QueueSpec:
        """``a,b``, ``a:5,b:1`` (every queue weighted, or none), with ``strict``.
        Raises ``QueueSpecError`` with a one-line reason."""
        names: list[str] = []
        weights: list[int | None] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, colon, weight = item.partition(":")
            name = name.strip()
            if not name:
                raise QueueSpecError(f"{item!r} names no queue")
            if name in names:
                raise QueueSpecError(f"queue {name!r} is given twice")
            names.append(name)
            weights.append(_weight(name, weight) if colon else None)
        if not names:
            raise QueueSpecError("give at least one queue name")
        given = [w for w in weights if w is not None]
        if given and len(given) != len(weights):
            raise QueueSpecError("give a weight to every queue (high:5,low:1) or to none")
        if given and strict:
            raise QueueSpecError("--strict takes the queues in order, weights share fetches: not both")
        return cls(tuple(names), tuple(given) if given else None, strict)

    def describe(self) -> str:
        """The queues as the start block shows them, with how they are chosen."""
        if self.weights is not None:
            total = sum(self.weights)
            shares = ", ".join(f"{q} {w}/{total}" for q, w in zip(self.queues, self.weights, strict=True))
            return f"{shares} (weighted)"
        if self.strict and len(self.queues) > 1:
            return f"{' > '.join(self.queues)} (strict priority)"
        return ", ".join(self.queues)


def _weight(queue: str, text: str) -> int:
    try:
        weight = int(text.strip())
    except ValueError:
        weight = 0
    if weight < 1:
        raise QueueSpecError(f"queue {queue!r}: weight {text.strip()!r} is not a positive integer")
    return weight


class Dealer:
    """Deals each fetch's free slots to the queues: the ``quotas`` of ``Broker.fetch``.

    Not thread-safe: one per consumer, on its loop.
    """

    def __init__(self, spec: QueueSpec) -> None:
        if spec.weights is not None and len(spec.weights) != len(spec.queues):
            raise ValueError(f"{len(spec.weights)} weights for {len(spec.queues)} queues")
        self.spec = spec
        self._weights = spec.weights
        self._current = [0] * len(spec.queues)  # the round-robin's running credit per queue

    @property
    def active(self) -> bool:
        """False in the default mode: fetch passes no quotas and costs what it did."""
        return len(self.spec.queues) > 1 and (self.spec.strict or self._weights is not None)

    def quotas(self, free: int) -> list[int] | None:
        """How many of ``free`` slots each queue may fill first, or None (default mode)."""
        if not self.active:
            return None
        weights = self._weights
        if weights is None:  # strict: every slot for every queue, taken in order
            return [free] * len(self.spec.queues)
        return self._deal(weights, free)

    def _deal(self, weights: Sequence[int], free: int) -> list[int]:
        """Smooth weighted round-robin, one pick per slot: each queue gains its weight,
        the richest is picked and pays the total. Picks of one queue are spread out
        (5,2,1 deals a b a a c a b a), never bunched."""
        total = sum(weights)
        current = self._current
        quotas = [0] * len(weights)
        for _ in range(free):
            best = 0
            for index, weight in enumerate(weights):
                current[index] += weight
                if current[index] > current[best]:
                    best = index
            current[best] -= total
            quotas[best] += 1
        return quotas
