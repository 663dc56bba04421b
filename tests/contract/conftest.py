"""Fixtures of the broker contract suite: every test runs once per broker.

To run the whole suite against another broker, append one URL factory to
``BROKERS``. A factory gets the test's temporary directory and a name unique to
the test, and returns the URL of an empty store; it calls ``pytest.skip`` when
its server is not available (a Redis factory would read a URL from the
environment and use the unique name as its key prefix).

A test that needs what not every broker can do is marked with the capability
(a ``ClassVar[bool]`` of ``Broker``): ``@pytest.mark.needs("leases_expire")`` runs
only against brokers that declare it True, and is skipped, with the capability's
meaning as the reason, for the others.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hurtle.brokers import Broker, broker_class
from hurtle.results import ResultStore
from tests.amqp_server import amqp_url
from tests.redis_server import redis_cluster_url, redis_url

from .support import SHORT_LEASE, Backend, Brokers

UrlFactory = Callable[[Path, str], str]  # (tmp_path, unique name) -> broker URL


def memory_url(tmp_path: Path, unique: str) -> str:
    # Memory brokers of one URL share a store in the process: one name per test.
    return f"memory://contract-{unique}"


def sqlite_url(tmp_path: Path, unique: str) -> str:
    return f"sqlite:///{tmp_path}/b.db"  # tmp_path is absolute: sqlite:////...


BROKERS: list[UrlFactory] = [memory_url, sqlite_url, redis_url, redis_cluster_url, amqp_url]

def _name(factory: UrlFactory) -> str:
    return factory.__name__.removesuffix("_url")


@functools.cache
def capability(name: str) -> str:
    """What a capability of ``Broker`` (a ``ClassVar[bool]``) means: the ``#:`` comment above it."""
    lines = inspect.getsource(Broker).splitlines()
    for at, line in enumerate(lines):
        if line.strip().startswith(f"{name}: ClassVar[bool]"):
            above = list(itertools.takewhile(lambda s: s.strip().startswith("#:"), reversed(lines[:at])))
            if above:
                return " ".join(s.strip().removeprefix("#:").strip() for s in reversed(above))
    raise LookupError(f"Broker declares no capability {name!r} with a #: comment above it")


def _skip_unless_capable(node: pytest.Item, broker: type[Broker]) -> None:
    """Skip a test marked ``@pytest.mark.needs("capability", ...)`` for a broker that
    lacks one: the one way a contract test is skipped for a broker."""
    for mark in node.iter_markers("needs"):
        for name in mark.args:
            why = capability(name)  # an unknown name fails the test, never skips it
            if not getattr(broker, name):
                pytest.skip(f"{broker.__name__}: {name} is False ({why})")


@pytest.fixture(params=BROKERS, ids=_name)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory: UrlFactory = request.param
    url = factory(tmp_path, uuid.uuid4().hex)
    _skip_unless_capable(request.node, broker_class(url))
    return Backend(_name(factory), url)


@pytest.fixture
async def brokers(backend: Backend) -> AsyncIterator[Brokers]:
    opened = Brokers(backend.url)
    yield opened
    await opened.close_all()


@pytest.fixture
async def broker(brokers: Brokers) -> Broker:
    """A connected broker whose leases outlast the test."""
    return await brokers.open()


@pytest.fixture
async def short_lease(brokers: Brokers) -> Broker:
    """A connected broker on the same store whose leases expire after ``SHORT_LEASE``."""
    return await brokers.open(visibility_timeout=SHORT_LEASE)


@pytest.fixture
def results(broker: Broker) -> ResultStore:
    store = broker.result_store()
    if store is None:
        pytest.skip(f"{type(broker).__name__} keeps no results")
    return store
