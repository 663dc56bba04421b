"""App settings and task registration: names, options checked when decorated."""

from __future__ import annotations

import math
from typing import Any

import pytest

import hurtle
from hurtle import App, ConfigurationError

from .support import MakeApp


def add(x: int, y: int) -> int:
    return x + y


async def fetch(url: str) -> str:
    return url


class Maths:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


# -- App settings -----------------------------------------------------------------


def test_the_broker_comes_from_hurtle_broker_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HURTLE_BROKER", "memory://from-the-environment")

    app = App()

    assert app.broker_url == "memory://from-the-environment"
    app.close()


def test_the_broker_defaults_to_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HURTLE_BROKER", raising=False)

    assert App().broker_url == "sqlite:///hurtle.db"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"broker": "nosuch://host"}, "unknown broker URL"),
        ({"broker": "sqlite://relative.db"}, "bad SQLite URL"),
        ({"visibility_timeout": 0}, "visibility_timeout"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"history_ttl": -1.0}, "history_ttl must be >= 0"),
        ({"signature_max_age": 300.0}, "signature_max_age must be > 0 seconds, with a secret_key"),
        ({"secret_key": "k", "signature_max_age": 0}, "signature_max_age must be > 0"),
    ],
)
def test_a_bad_setting_fails_loudly_when_the_app_is_made(settings: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        App(**{"broker": "memory://", **settings})


def test_an_unknown_setting_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        App("memory://", prefetch=10)  # type: ignore[call-arg]


def test_a_text_secret_key_is_used_as_its_utf8_bytes() -> None:
    assert App("memory://", secret_key="clé").secret_key == "clé".encode()


# -- registration -----------------------------------------------------------------


def test_a_task_is_named_after_its_module_and_qualified_name(app: App) -> None:
    assert app.task(add).name == f"{__name__}.add"
    assert app.task(Maths.double).name == f"{__name__}.Maths.double"


def test_a_task_is_registered_under_its_name(app: App) -> None:
    task = app.task(name="maths.add")(add)

    assert task.name == "maths.add"
    assert app.tasks == {"maths.add": task}


def test_a_task_still_runs_as_a_plain_call(app: App) -> None:
    assert app.task(add)(2, 3) == 5


def test_sync_and_async_functions_are_told_apart(app: App) -> None:
    assert app.task(add).is_async is False
    assert app.task(fetch).is_async is True


def test_a_task_takes_the_app_defaults_unless_its_options_say_otherwise(
    make_app: MakeApp,
) -> None:
    app = make_app(default_queue="main", default_retries=7)
    backoff = hurtle.Constant(1.0)

    plain = app.task(add).opts
    tuned = app.task(queue="io", retries=0, timeout=5.0, backoff=backoff, store_result=False)(fetch).opts

    assert (plain.queue, plain.retries, plain.timeout, plain.backoff) == ("main", 7, None, None)
    assert (tuned.queue, tuned.retries, tuned.timeout) == ("io", 0, 5.0)
    assert (tuned.backoff, tuned.store_result) == (backoff, False)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"queue": 7}, "queue"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"backoff": 2.0}, "backoff"),
    ],
)
def test_a_bad_option_is_refused_when_the_task_is_decorated(
    app: App, options: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        app.task(**options)(add)

    assert app.tasks == {}


def test_an_unknown_option_is_a_type_error(app: App) -> None:
    with pytest.raises(TypeError, match="priority"):
        app.task(priority=3)(add)  # type: ignore[call-overload]


def test_two_functions_under_one_name_are_refused(app: App) -> None:
    app.task(name="tasks.same")(add)

    with pytest.raises(ConfigurationError, match=r"tasks\.same"):
        app.task(name="tasks.same")(Maths.double)


def test_registering_the_same_function_again_is_allowed(app: App) -> None:
    first = app.task(add)
    again = app.task(add)

    assert app.tasks == {first.name: again}


def test_only_a_callable_can_be_a_task(app: App) -> None:
    with pytest.raises(ConfigurationError):
        app.task("not a function")  # type: ignore[call-overload]


# -- options() --------------------------------------------------------------------


def test_options_returns_a_configured_copy_and_leaves_the_task_alone(app: App) -> None:
    task = app.task(queue="io", timeout=5.0)(add)

    copy = task.options(delay=2.0, queue="low", timeout=1.0)

    assert copy is not task
    assert (copy.name, copy.fn) == (task.name, task.fn)
    assert (copy.opts.delay, copy.opts.queue, copy.opts.timeout) == (2.0, "low", 1.0)
    assert (task.opts.delay, task.opts.queue, task.opts.timeout) == (None, "io", 5.0)
    assert app.tasks[task.name] is task


def test_options_keeps_what_it_is_not_told(app: App) -> None:
    task = app.task(queue="io", timeout=5.0, retries=2)(add)

    copy = task.options(delay=1.0)

    assert (copy.opts.queue, copy.opts.timeout, copy.opts.retries) == ("io", 5.0, 2)


@pytest.mark.parametrize("options", [{"delay": -1.0}, {"timeout": 0.0}, {"queue": ""}])
def test_options_are_checked_like_decorator_options(app: App, options: dict[str, Any]) -> None:
    task = app.task(add)

    with pytest.raises(ConfigurationError):
        task.options(**options)


def test_chained_options_keep_an_earlier_delay(app: App) -> None:
    task = app.task(add)

    chained = task.options(delay=5.0).options(queue="low")

    assert (chained.opts.delay, chained.opts.queue) == (5.0, "low")
