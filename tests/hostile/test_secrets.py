"""A password in a broker or result-store URL is never printed: not by a repr, an
error message, a log line, nor any command's output, whatever the broker.

Each test logs in with a password of its own (a Redis ACL user, a RabbitMQ user),
so a command that succeeds has really used it, and then greps everything it
printed for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from hurtle import App, Handle
from hurtle.brokers import from_url
from hurtle.errors import HurtleError
from hurtle.record_source import open_records
from tests.amqp_server import rabbitmqctl, shared_amqp_url, with_params
from tests.integration.conftest import hurtle_cli, scrape, wait_until
from tests.redis_server import free_port, shared_redis_url, with_prefix

PASSWORD = f"s3cr3t-pa55-{uuid.uuid4().hex[:8]}"

APP = """\
import hurtle

app = hurtle.App()  # $HURTLE_BROKER, $HURTLE_RESULTS


@app.task(retries=0)
def refuse() -> None:
    raise ValueError("refused on purpose")


@app.task
def add(x: int, y: int) -> int:
    return x + y
"""


def with_login(url: str, user: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Logins:
    """A Redis ACL user and a RabbitMQ user, both with ``PASSWORD``."""

    redis_user: str
    amqp_user: str

    def redis(self) -> str:
        base = with_prefix(shared_redis_url(), f"hurtle-test-{uuid.uuid4().hex}")  # deleted at exit
        return with_login(base, self.redis_user)

    def amqp(self) -> str:
        base = with_params(shared_amqp_url(), prefix=f"hurtle-test-{uuid.uuid4().hex}")
        return with_login(base, self.amqp_user)


@pytest.fixture(scope="module")
def logins() -> Iterator[Logins]:
    import redis

    user = f"hurtle-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(shared_redis_url())
    shared_amqp_url()
    client.acl_setuser(
        user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    try:
        rabbitmqctl("add_user", user, PASSWORD)
        try:
            rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
            yield Logins(user, user)
        finally:
            rabbitmqctl("delete_user", user)
    finally:
        client.acl_deluser(user)
        client.close()


@dataclass(frozen=True)
class Where:
    broker: str
    results: str | None

    @property
    def env(self) -> dict[str, str | None]:
        return {"HURTLE_BROKER": self.broker, "HURTLE_RESULTS": self.results, "HURTLE_APP": None}


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def where(request: pytest.FixtureRequest, logins: Logins, tmp_path: Path) -> Where:
    """The broker under test, and a result store behind a password where it has none."""
    if request.param == "sqlite":
        return Where(f"sqlite:///{tmp_path}/broker.db", logins.redis())
    if request.param == "redis":
        return Where(logins.redis(), None)
    return Where(logins.amqp(), logins.redis())


def send_refused_and_added(where: Where) -> tuple[Handle[Any], Handle[Any]]:
    """A task the worker refuses (a dead letter) and one that adds: their handles."""
    sender = App(where.broker, results=where.results)
    try:
        return sender.send_task("secretapp.refuse"), sender.send_task("secretapp.add", 1, 2)
    finally:
        sender.close()


def printed(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def assert_hidden(text: str) -> None:
    assert PASSWORD not in text, text


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "secretapp.py").write_text(APP)
    return tmp_path


def test_no_command_prints_the_password(where: Where, app_dir: Path) -> None:
    # Given tasks sent through brokers and result stores behind a password
    refused, added = send_refused_and_added(where)
    commands = [
        ("worker", "secretapp", "--burst", "-p", "1", "--log-level", "debug"),
        ("status", "-A", "secretapp"),
        ("status", "--broker", where.broker),
        ("status", "task", refused.id, "-A", "secretapp"),
        ("status", "task", added.id, "-A", "secretapp", "--json"),
        ("dlq", "list", "-A", "secretapp"),
        ("dlq", "list", "-A", "secretapp", "--full"),
        ("dlq", "requeue", "--all", "-A", "secretapp"),
        ("dlq", "purge", "--yes", "-A", "secretapp"),
    ]
    for command in commands:
        # When each command runs on them (the worker logging everything it logs)
        done = hurtle_cli(*command, cwd=app_dir, env=where.env)
        # Then it works, and prints no password
        assert done.returncode == 0, (command, printed(done))
        assert_hidden(printed(done))
    # And an id nobody knows is said so (naming where it looked) without the password
    unknown = hurtle_cli("status", "task", "0" * 32, "-A", "secretapp", cwd=app_dir, env=where.env)
    assert unknown.returncode == 1, printed(unknown)
    assert_hidden(printed(unknown))
    worker_log = hurtle_cli(*commands[0], cwd=app_dir, env=where.env)
    assert "broker:" in worker_log.stderr  # the start block was printed, and read above


def test_no_dashboard_page_nor_json_shows_the_password_or_the_secret_key(where: Where, app_dir: Path) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from hurtle.dashboard.security import Access
    from hurtle.dashboard.server import Options, create_app

    # Given a dead letter and a result behind a password, shown for an app with a secret key
    refused, added = send_refused_and_added(where)
    done = hurtle_cli("worker", "secretapp", "--burst", "-p", "1", cwd=app_dir, env=where.env)
    assert done.returncode == 0, printed(done)
    key = f"key-{PASSWORD}"
    app = App(where.broker, results=where.results, secret_key=key)
    try:
        paths = [
            "/", "/workers", "/tasks", "/dead", "/profiles", "/schedules", f"/task/{refused.id}",
            "/api/overview", "/api/workers", "/api/tasks?minutes=60", "/api/dead", "/api/dead?q=refuse",
            "/api/profiles", "/api/schedules", f"/api/task/{refused.id}", f"/api/task/{added.id}",
            "/api/profile?task=secretapp.add",
        ]
        # When every page and every JSON endpoint of the dashboard is read
        with TestClient(create_app(app, Options(), Access())) as client:
            answers = [client.get(path) for path in paths]
    finally:
        app.close()
    # Then they answer, and none shows the password or the key
    assert "refuse" in answers[paths.index("/api/dead")].text
    for path, answer in zip(paths, answers, strict=True):
        assert answer.status_code in (200, 404), (path, answer.text)
        assert_hidden(answer.text)
        assert key not in answer.text


def test_the_worker_registry_holds_no_password_nor_login(where: Where, app_dir: Path, logins: Logins) -> None:
    # Given a worker logged in with a password, its records long-lived (only a clean stop removes them)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hurtle", "worker", "secretapp", "-p", "1", "--registry-interval", "60"],
        cwd=app_dir, env=_environ(where.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # When it has written its record to the registry
        def listed() -> str | None:
            done = hurtle_cli("status", "-A", "secretapp", "--json", cwd=app_dir, env=where.env)
            return printed(done) if done.returncode == 0 and json.loads(done.stdout)["workers"] else None

        shown = wait_until(listed, "the worker in the registry")
        records = asyncio.run(_raw_records(where))
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=60)
    # Then no record holds the password, nor even the login (URLs are printed with the
    # user name and the password masked; a record holds no URL at all), and nothing
    # printed shows the password
    assert records
    for record in records:
        text = record.decode(errors="replace")
        assert_hidden(text)
        assert logins.redis_user not in text and logins.amqp_user not in text
    assert_hidden(shown + output)


def _environ(changes: dict[str, str | None]) -> dict[str, str]:
    environ = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


async def _raw_records(where: Where) -> list[bytes]:
    store = open_records(where.broker, where.results)
    assert store is not None
    try:
        return list((await store.get_all("")).values())
    finally:
        await store.close()


@pytest.mark.slow
def test_bench_and_demo_print_no_password(where: Where, app_dir: Path) -> None:
    for command in (
        ("bench", "noop", "-n", "20", "-p", "1", "--broker", where.broker),
        ("bench", "noop", "-n", "20", "-p", "1", "--broker", where.broker, "--json"),
        ("demo", "-n", "20", "-p", "1", "--broker", where.broker),
    ):
        done = hurtle_cli(*command, cwd=app_dir, env=where.env)
        # (the demo measures from stored results: on RabbitMQ, which keeps none, it says so)
        assert done.returncode == 0 or "keeps no results" in done.stderr, printed(done)
        assert_hidden(printed(done))


def test_an_app_and_its_brokers_print_their_urls_without_the_password(
    where: Where, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(where.broker, results=where.results)
    # A user reading the URLs back compares them with what they passed
    assert app.broker_url == where.broker and where.broker == app.broker_url
    assert app.results_url == where.results
    assert app.broker_url.reveal() == where.broker
    logging.getLogger("user").warning("broker %s results %r", app.broker_url, app.results_url)
    broker = from_url(app.broker_url)
    shown = [
        repr(app), str(app.broker_url), repr(app.broker_url), f"{app.broker_url}", f"{app.results_url!r}",
        f"{app.broker_url:>200}", "%s %r" % (app.broker_url, app.results_url),  # noqa: UP031
        str(broker.url), repr(vars(broker)), caplog.text,
    ]
    for text in shown:
        assert_hidden(text)
    app.broker_url = where.broker  # assigned as a plain string, held as a masked one
    assert_hidden(repr(app))


BAD_URLS = [
    f"redis://user:{PASSWORD}@127.0.0.1:6379/0?prefix={{braces}}",
    f"redis://user:{PASSWORD}@127.0.0.1:6379/zero",
    f"redis://user:{PASSWORD}@127.0.0.1:99999/0",
    f"redis://user:{PASSWORD}@127.0.0.1:6379/0?prefx=app",
    f"redis://user:{PASSWORD}@127.0.0.1:6379/0?reconnect_timeout=soon",
    f"redis://127.0.0.1:6379/0?password={PASSWORD}&prefix=",
    f"rediss://user:{PASSWORD}@127.0.0.1:6379/0?socket_timeout=soon",
    f"redis+cluster://user:{PASSWORD}@127.0.0.1:6379/1",
    f"unix://user:{PASSWORD}@/run/redis.sock?db=zero",
    f"redis://user:{PASSWORD}/with/slashes@127.0.0.1:6379/0",
    f"redis://user:{PASSWORD}?and#more@127.0.0.1:6379/0",
    f"amqp://user:{PASSWORD}@127.0.0.1:5672/?queue_type=lazy",
    f"amqp://user:{PASSWORD}@127.0.0.1:5672/?confirm=maybe",
    f"amqp://user:{PASSWORD}@127.0.0.1:5672/?delivery_limit=3",
    f"amqp://user:{PASSWORD}@127.0.0.1:port/",
    f"amqps://user:{PASSWORD}@127.0.0.1:5671/?prefix=two%20words",
    f"amqp://user:{PASSWORD}@127.0.0.1:5672/?heartbeet=5",
    f"sqlite:///broker.db?password={PASSWORD}",
    f"sqlite://user:{PASSWORD}@host/broker.db",
    f"memory://user:{PASSWORD}@here?prefix=x",
    f"postgres://user:{PASSWORD}@127.0.0.1:5432/db",
    f"user:{PASSWORD}@127.0.0.1:6379",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=lambda url: url.replace(PASSWORD, "PW"))
def test_a_bad_url_is_refused_without_showing_its_password(url: str, app_dir: Path) -> None:
    # When an app, a broker, or a command is given a URL it refuses
    with pytest.raises(HurtleError) as refused:
        App(url)
    # Then neither the error nor its traceback shows the password
    assert_hidden("".join(traceback.format_exception(refused.value)))
    with pytest.raises(HurtleError) as refused:
        from_url(url)
    assert_hidden("".join(traceback.format_exception(refused.value)))
    # (every command that reads a broker opens it as status does)
    for command in (("status", "--broker", url), ("worker", "secretapp", "--broker", url)):
        done = hurtle_cli(*command, cwd=app_dir, env={"HURTLE_BROKER": None, "HURTLE_RESULTS": None})
        assert done.returncode == 2, printed(done)
        assert_hidden(printed(done))


@pytest.mark.parametrize(("scheme", "port"), [
    ("redis", "of the server"), ("redis", "closed"), ("amqp", "of the server"), ("amqp", "closed"),
])
def test_a_broker_that_refuses_the_login_or_is_not_there_is_reported_without_the_password(
    scheme: str, port: str, app_dir: Path
) -> None:
    shared = shared_redis_url() if scheme == "redis" else shared_amqp_url()
    number = urlsplit(shared).port if port == "of the server" else free_port()
    url = f"{scheme}://nobody:{PASSWORD}@127.0.0.1:{number}/{'0' if scheme == 'redis' else ''}"
    sender = App(url)
    try:
        with pytest.raises(HurtleError) as refused:
            sender.send_task("secretapp.add", 1, 2)
    finally:
        sender.close()
    assert_hidden("".join(traceback.format_exception(refused.value)))
    for command in (("status", "--broker", url), ("dlq", "list", "--broker", url),
                    ("worker", "secretapp", "--broker", url)):
        done = hurtle_cli(*command, cwd=app_dir, env={"HURTLE_BROKER": None, "HURTLE_RESULTS": None})
        assert done.returncode == 2, printed(done)
        assert_hidden(printed(done))


def test_metrics_show_no_password_nor_login(where: Where, app_dir: Path, logins: Logins) -> None:
    # Given a worker logged in with a password, serving /metrics, that ran a task and failed one
    port = free_port()
    send_refused_and_added(where)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hurtle", "worker", "secretapp", "-p", "1", "--metrics-port", str(port)],
        cwd=app_dir, env=_environ(where.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # When /metrics counts both tasks and shows the queues
        def settled() -> str | None:
            text, samples = scrape(port)
            tasks = sum(value for (name, _), value in samples.items() if name == "hurtle_tasks_total")
            queues = any(name == "hurtle_queue_messages" for name, _ in samples)
            return text if tasks == 2 and queues else None

        text = wait_until(settled, "both tasks counted at /metrics")
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=60)
    # Then neither the password nor the login is in it, nor in what the worker printed
    assert_hidden(text + output)
    assert logins.redis_user not in text and logins.amqp_user not in text
