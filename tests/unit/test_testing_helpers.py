"""``hurtle.testing``: an existing app tested on a private broker, and drains that end."""

from __future__ import annotations

import pytest

import hurtle
import hurtle.testing
from hurtle import App


def test_isolated_points_an_existing_app_at_a_private_broker_and_back() -> None:
    app = App("redis://127.0.0.1:1/0")  # a tasks.py naming a real broker, never reached here

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with hurtle.testing.isolated(app):
        handle = add.send(1, 2)
        hurtle.testing.drain(app)
        assert handle.result(timeout=5.0) == 3
    with hurtle.testing.isolated(app):
        assert hurtle.testing.drain(app).finished == 0  # nothing left from the test before

    assert app.broker_url == "redis://127.0.0.1:1/0"
    app.close()


def test_drain_with_a_timeout_ends_and_says_what_is_left_delayed() -> None:
    app = App("memory://")

    @app.task
    def later() -> None: ...

    with hurtle.testing.isolated(app):
        later.send()
        later.options(delay=3600).send()
        with pytest.raises(TimeoutError, match="1 task\\(s\\) still queued or delayed"):
            hurtle.testing.drain(app, timeout=0.5)
    app.close()


def test_drain_with_a_timeout_returns_when_everything_ran() -> None:
    app = App("memory://")

    @app.task
    def now() -> None: ...

    with hurtle.testing.isolated(app):
        now.send()
        assert hurtle.testing.drain(app, timeout=30.0).succeeded == 1
    app.close()
