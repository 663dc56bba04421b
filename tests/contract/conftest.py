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

_NO_LEASE_EXPIRY = (
    "AMQP leases do not expire after visibility_timeout: a delivery stays leased while its channel"
    " lives, and RabbitMQ redelivers it, counted, when the connection closes"
    " (tests/integration/test_amqp_broker.py tests that instead)"
)
#: The one place a contract test is skipped for a broker: {broker: {test: why}}.
CANNOT: dict[str, dict[str, str]] = {
    "amqp": dict.fromkeys(
        [
            "test_an_expired_lease_is_delivered_again_with_its_delivery_counted",
            "test_extend_keeps_a_lease_alive_past_the_visibility_timeout",
            "test_a_stale_ack_leaves_the_new_lease_alone",
            "test_a_retried_message_starts_a_fresh_delivery_count",
            "test_a_stale_retry_adds_no_second_copy",
            "test_a_stale_dead_letter_leaves_the_new_lease_alone",
            "test_purge_deletes_a_message_whose_lease_expired",
        ],
        _NO_LEASE_EXPIRY,
    ),
}


def _name(factory: UrlFactory) -> str:
    return factory.__name__.removesuffix("_url")


@pytest.fixture(params=BROKERS, ids=_name)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory: UrlFactory = request.param
    reason = CANNOT.get(_name(factory), {}).get(request.node.originalname)
    if reason is not None:
        pytest.skip(f"{_name(factory)}: {reason}")
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
