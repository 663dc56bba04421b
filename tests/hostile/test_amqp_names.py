"""Queue names RabbitMQ or pamqp would refuse are refused where they are defined (before:
pamqp's ValueError in every worker, reported as RabbitMQ unreachable, exit 69)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import hurtle
from hurtle.errors import ConfigurationError
from tests.amqp_server import unique_amqp_url
from tests.contract.support import Brokers, fetch_one, messages
from tests.integration.conftest import hurtle_cli

QUEUE = "q"

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
REFUSED = {
    "non-ASCII": ("caf\u00e9", "letters, digits"),
    "punctuation pamqp refuses": ("jobs!", "letters, digits"),
    "longer than RabbitMQ's names": ("x" * 240, "255"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_queue_name_rabbitmq_would_refuse_is_refused_where_it_is_defined(name: str) -> None:
    # Before: pamqp's ValueError in every worker, which reported RabbitMQ unreachable (exit 69)
    queue, problem = REFUSED[name]
    app = hurtle.App(AMQP)

    with pytest.raises(ConfigurationError, match=problem):
        app.task(queue=queue)(_noop)
    task = app.task(name="ok")(_noop)
    with pytest.raises(ConfigurationError, match=problem):
        task.options(queue=queue)
    with pytest.raises(ConfigurationError, match=problem):
        hurtle.App(AMQP, default_queue=queue)
    # The rule is RabbitMQ's: the other brokers take the name
    assert hurtle.App("memory://", default_queue=queue).default_queue == queue


@pytest.mark.parametrize("queue", ["a b", "amq.jobs", "emails:high/eu-west_1", "x" * 200])
def test_names_rabbitmq_takes_are_taken(queue: str) -> None:
    assert hurtle.App(AMQP).task(queue=queue)(_noop).opts.queue == queue


def test_a_prefix_under_rabbitmq_s_reserved_amq_names_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        hurtle.App(f"{AMQP}?prefix=amq")


async def test_the_broker_refuses_a_bad_queue_name_as_a_mistake_not_an_outage() -> None:
    brokers = Brokers(unique_amqp_url(reconnect_timeout="30"))
    try:
        broker = await brokers.open()
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match="letters, digits"):
            await broker.enqueue(messages("caf\u00e9", b"x"))
        with pytest.raises(ConfigurationError, match="letters, digits"):
            await broker.fetch(["caf\u00e9"], 1, 1.0)
        assert time.monotonic() - started < 5.0  # no reconnecting for reconnect_timeout
        await broker.enqueue(messages(QUEUE, b"fine"))  # and the connection is still good
        assert (await fetch_one(broker, QUEUE)).body == b"fine"
    finally:
        await brokers.close_all()


def test_the_worker_refuses_a_bad_queue_name_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("import hurtle\napp = hurtle.App('memory://')\n")
    url = unique_amqp_url()
    out = hurtle_cli("worker", "tasks", "--burst", "--broker", url, "-q", "caf\u00e9", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "letters, digits" in out.stderr, out.stderr


def _noop() -> None:
    """A task body."""
