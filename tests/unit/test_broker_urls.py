"""Broker URLs: every broker refuses a query option it does not know, and names it."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import aiormq.connection
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

import hurtle
from hurtle.brokers import BROKERS, broker_class, from_url
from hurtle.brokers.amqp.link import AIORMQ_OPTIONS
from hurtle.brokers.redis.url import client_options
from hurtle.errors import ConfigurationError

# One URL per scheme; none of them is connected to.
URLS = [
    "sqlite:///hurtle-urls.db",
    "memory://urls",
    "redis://127.0.0.1:6379/0",
    "rediss://127.0.0.1:6380/0",
    "unix:///run/redis.sock",
    "redis+cluster://127.0.0.1:7000",
    "amqp://guest:guest@127.0.0.1:5672/",
    "amqps://guest:guest@127.0.0.1:5671/",
]


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.mark.parametrize("url", URLS)
def test_a_misspelt_option_is_a_configuration_error_that_names_it(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'prefx'"):
        from_url(with_query(url, "prefx=app1"))


@pytest.mark.parametrize("url", URLS)
def test_an_app_refuses_a_misspelt_option_when_it_is_made(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'prefx'"):
        hurtle.App(with_query(url, "prefx=app1"))


@pytest.mark.parametrize(
    ("url", "lists"),
    [
        ("redis://127.0.0.1:6379/0", ["prefix", "reconnect_timeout", "socket_timeout", "client_name"]),
        ("redis+cluster://127.0.0.1:7000", ["prefix", "socket_timeout"]),
        ("amqp://127.0.0.1/", ["prefix", "queue_type", "heartbeat", "name"]),
    ],
)
def test_the_error_suggests_the_option_meant_and_lists_the_known_ones(url: str, lists: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'prefix'") as caught:
        from_url(with_query(url, "prefx=app1"))
    for name in lists:
        assert re.search(rf"\b{name}\b", str(caught.value))


def test_a_broker_that_takes_no_options_says_so() -> None:
    with pytest.raises(ConfigurationError, match="takes no options"):
        from_url(with_query("memory://urls", "prefix=app1"))


def test_the_sqlite_broker_names_its_one_option() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'prefix'.*hurtle takes mode$"):
        from_url(with_query("sqlite:///hurtle-urls.db", "prefix=app1"))


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?prefix=app1&reconnect_timeout=5&socket_timeout=2&client_name=me",
        "rediss://127.0.0.1:6380/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/ssl/ca.pem",
        "unix:///run/redis.sock?db=1&prefix=app1",
        "redis+cluster://127.0.0.1:7000?prefix=app1&socket_timeout=2",
        "amqp://127.0.0.1/?prefix=app1&queue_type=quorum&heartbeat=10&name=me",
        "sqlite:///hurtle-urls.db",
    ],
)
def test_known_options_are_taken(url: str) -> None:
    from_url(url)


def test_a_tls_option_on_a_plain_redis_url_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'ssl_cert_reqs' in the Redis URL"):
        from_url("redis://127.0.0.1:6379/0?ssl_cert_reqs=none")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lib_name, lib_version: still taken
@pytest.mark.parametrize("base", ["redis://h/0", "rediss://h/0", "unix:///run/redis.sock"])
def test_every_option_taken_for_redis_makes_a_redis_py_connection(base: str) -> None:
    # An option redis-py does not take was a TypeError when it made a connection.
    connection_class = type(aioredis.Redis.from_url(base).connection_pool.make_connection())
    for name in sorted(client_options(connection_class)):
        try:
            aioredis.Redis.from_url(f"{base}?{name}={_value_for(name)}").connection_pool.make_connection()
        except TypeError as exc:
            pytest.fail(f"?{name}= is taken, but redis-py refuses it: {exc}")
        except Exception:  # redis-py refused the value: it knows the option
            pass


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_option_taken_for_a_cluster_makes_a_redis_py_cluster_client() -> None:
    for name in sorted(client_options(RedisCluster)):
        try:
            RedisCluster.from_url(f"redis://h:7000?{name}={_value_for(name)}")
        except TypeError as exc:
            pytest.fail(f"?{name}= is taken, but RedisCluster refuses it: {exc}")
        except Exception:  # redis-py refused the value: it knows the option
            pass


def _value_for(name: str) -> str:
    """A value redis-py's URL parser converts for ``name``; text for an option it hands on."""
    parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
    for value in ("1", "true", "TimeoutError"):
        try:
            if parser is not None:
                parser(value)
            return value
        except Exception:
            continue
    return "x"


def test_the_aiormq_options_are_those_the_installed_aiormq_reads() -> None:
    read = set(re.findall(r"""query\.get\(\s*["'](\w+)["']""", inspect.getsource(aiormq.connection)))
    assert read == set(AIORMQ_OPTIONS)


def test_each_registered_broker_class_serves_the_schemes_it_is_registered_for() -> None:
    schemes = [scheme for entry in BROKERS for scheme in entry.schemes]
    assert len(schemes) == len(set(schemes))  # one class per scheme
    for entry in BROKERS:
        cls = broker_class(f"{entry.schemes[0]}://localhost/0")
        assert (cls.__module__.startswith(entry.module), cls.__name__, cls.schemes) == (
            True, entry.name, entry.schemes
        )


def test_looking_up_a_broker_imports_only_the_client_library_of_its_scheme() -> None:
    code = (
        "import sys\n"
        "from hurtle.brokers import broker_class\n"
        "broker_class('sqlite:///x.db'); broker_class('memory://')\n"
        "print(sorted(m for m in ('redis', 'aiormq', 'aio_pika') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
