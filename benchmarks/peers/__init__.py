"""``python -m benchmarks.peers``: the same workloads on other task queues, on the same Redis.

One module per peer (``celery.py``, ``dramatiq.py``, ``rq.py``, ``arq.py``,
``huey.py``, ``taskiq.py``), each with its app and tasks, its best documented
worker configuration for the workload, its way to send, and its queue's
counts; ``base.py`` is the contract they fill and the task bodies they share;
``runner.py`` runs and verifies one peer run, ``drain.py`` its workers.

A peer module imports its library at import, so ``load`` imports it only
when asked; ``missing`` says whether it can be, without importing it.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

from benchmarks.peers.base import Peer

NAMES = ("celery", "dramatiq", "rq", "arq", "huey", "taskiq")
#: The peers with a chord (a group whose completion calls a callback): ``chord`` compares with these.
CHORDS = ("celery", "dramatiq")
#: What each peer's module imports, beyond the redis client hurtle[redis] brings.
_NEEDS = {
    "celery": ("celery", "gevent"),
    "dramatiq": ("dramatiq", "gevent"),
    "rq": ("rq",),
    "arq": ("arq",),
    "huey": ("huey", "gevent"),
    "taskiq": ("taskiq", "taskiq_redis"),
}


def missing(name: str) -> list[str]:
    """The modules ``name`` needs that cannot be imported here."""
    return [module for module in ("redis", *_NEEDS[name]) if importlib.util.find_spec(module) is None]


def peer_version(peer: Peer) -> str:
    try:
        return version(peer.distribution)
    except PackageNotFoundError:
        return "?"


def load(name: str) -> Peer:
    """The peer's adapter, ``benchmarks.peers.<name>``; imports its library."""
    if name not in NAMES:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(NAMES)}")
    peer: Peer = importlib.import_module(f"benchmarks.peers.{name}").PEER
    return peer
