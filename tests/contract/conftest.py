"""Fixtures of the broker contract suite: every test runs once per broker.

To run the whole suite against another broker, append one URL factory to
``BROKERS``. A factory gets the test's temporary directory and a name unique to
the test, and returns the URL of an empty store; it calls ``pytest.skip`` when
its server is not available (a Redis factory would read a URL from the
environment and use the unique name as its key prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hurtle.brokers import Broker
from hurtle.results import ResultStore
from tests.redis_server import redis_url

from .support import SHORT_LEASE, Backend, Brokers

UrlFactory = Callable[[Path, str], str]  # (tmp_path, unique name) -> broker URL


def memory_url(tmp_path: Path, unique: str) -> str:
    # Memory brokers of one URL share a store in the process: one name per test.
    return f"memory://contract-{unique}"


def sqlite_url(tmp_path: Path, unique: str) -> str:
    return f"sqlite:///{tmp_path}/b.db"  # tmp_path is absolute: sqlite:////...


BROKERS: list[UrlFactory] = [memory_url, sqlite_url, redis_url]


def _name(factory: UrlFactory) -> str:
    return factory.__name__.removesuffix("_url")


@pytest.fixture(params=BROKERS, ids=_name)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory: UrlFactory = request.param
    return Backend(_name(factory), factory(tmp_path, uuid.uuid4().hex))


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
