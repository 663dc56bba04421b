"""A bench run's URL gets a prefix of the run's own on Redis and RabbitMQ; other URLs pass."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from hurtle.bench.namespace import run_namespace, with_prefix


def options(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_the_default_prefix_gets_the_suffix() -> None:
    url = with_prefix("redis://127.0.0.1:6379/0", "-bench-ab12")
    assert url.startswith("redis://127.0.0.1:6379/0?")
    assert options(url) == {"prefix": "hurtle-bench-ab12"}


def test_a_prefix_of_the_url_s_own_gets_the_suffix_and_other_options_stay() -> None:
    url = with_prefix("amqp://guest:guest@127.0.0.1:5672/?prefix=team&queue_type=quorum", "-bench-ab12")
    assert url.startswith("amqp://guest:guest@127.0.0.1:5672/?")
    assert options(url) == {"prefix": "team-bench-ab12", "queue_type": "quorum"}


def test_a_unix_socket_url_keeps_its_path() -> None:
    url = with_prefix("unix:///run/redis.sock?db=2", "-bench-ab12")
    assert url.startswith("unix:///run/redis.sock?")
    assert options(url) == {"db": "2", "prefix": "hurtle-bench-ab12"}


@pytest.mark.parametrize("url", ["sqlite:///tmp/bench.db", "memory://bench"])
def test_urls_of_brokers_without_a_shared_server_are_used_as_they_are(url: str) -> None:
    with run_namespace(url) as used:
        assert used == url


def test_each_run_gets_a_prefix_of_its_own() -> None:
    seen = set()
    for _ in range(3):
        with run_namespace("redis://127.0.0.1:1/0") as used:  # no server: nothing to delete
            seen.add(options(used)["prefix"])
    assert len(seen) == 3 and all(p.startswith("hurtle-bench-") for p in seen)


def test_a_namespace_that_cannot_be_deleted_is_said_and_the_run_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server gone by the end of the run: no error, and the log says what may be left
    with run_namespace("redis://127.0.0.1:1/0") as used:
        pass
    assert f"could not delete the bench run's namespace ({options(used)['prefix']})" in caplog.text


def test_a_bad_url_is_refused_in_the_user_s_own_terms_before_any_prefix_is_added() -> None:
    from hurtle.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as refused, run_namespace("redis://127.0.0.1:1/0?prefix={x}"):
        pass
    assert "prefix={x}'" in str(refused.value) and "-bench-" not in str(refused.value)
