"""The dashboard over HTTP: what each page's JSON says about real work, who may read
it, and which requests may change anything. Worker runs are in-process burst runs;
the browser tests (tests/browser) drive the same pages through Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from hurtle import App
from hurtle.brokers import broker_class
from hurtle.dashboard import dead
from hurtle.dashboard.hiding import HIDDEN
from hurtle.dashboard.security import Access
from hurtle.dashboard.server import Options, create_app
from hurtle.worker.consumer import Consumer, WorkerConfig
from hurtle.worker.process import figure_writing, history, worker_connection
from tests.amqp_server import unique_amqp_url
from tests.conftest import WORKER_LIMIT
from tests.integration.conftest import hurtle_cli
from tests.redis_server import unique_redis_url

SECRET_ARG = "argument-value-7f3a"
PAGES = ["/", "/workers", "/tasks", "/task/some-id", "/dead", "/profiles", "/schedules"]
JSON = ["/api/overview", "/api/workers", "/api/tasks", "/api/dead", "/api/profiles", "/api/schedules"]


def make_app(url: str, results: str | None = None) -> App:
    app = App(url, results=results)

    @app.task(name="refuse", retries=0)
    def refuse(word: str) -> None:
        raise ValueError(f"refused {word}")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.periodic(every=3600.0, name="hourly")
    def hourly() -> None:
        pass

    return app


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The app on SQLite, on Redis, and on RabbitMQ keeping its results, history and
    records in Redis (RabbitMQ keeps none of them)."""
    if request.param == "sqlite":
        made = make_app(f"sqlite:///{tmp_path}/broker.db")
    elif request.param == "redis":
        made = make_app(unique_redis_url())
    else:
        made = make_app(unique_amqp_url(), unique_redis_url())
    yield made
    made.close()


def settle(app: App) -> None:
    """Run the sent messages to their end in a burst run wired as ``hurtle worker``
    wires its processes, the task history included."""

    async def burst() -> None:
        config = WorkerConfig(queues=app.queues(), burst=True, fetch_timeout=0.05)
        async with worker_connection(app) as connection:
            consumer = Consumer(app, connection, config)
            async with history(app, consumer) as sinks, figure_writing(consumer, sinks):
                await asyncio.wait_for(consumer.run(), WORKER_LIMIT)

    asyncio.run(burst())


def client_of(app: App, options: Options | None = None, access: Access | None = None) -> TestClient:
    return TestClient(create_app(app, options or Options(), access or Access()))


def csrf_of(client: TestClient, path: str = "/dead") -> str:
    """The token a page of the dashboard carries, as its script reads it."""
    html = client.get(path).text
    return html.split('data-csrf="', 1)[1].split('"', 1)[0]


def test_every_page_and_its_json_show_the_work_done(app: App) -> None:
    # Given work that succeeded and work that died
    app.send_task("add", 1, 2)
    refused = app.send_task("refuse", SECRET_ARG)
    settle(app)
    with client_of(app) as client:
        # Then every page answers
        for path in PAGES:
            assert client.get(path).status_code == 200, path
        # And the overview counts the dead letter on its queue
        (queue,) = client.get("/api/overview").json()["queues"]
        assert (queue["name"], queue["dead"], queue["ready"]) == ("default", 1, 0)
        # And the tasks page has both tasks' figures from the history
        tasks = {t["task"]: t for t in client.get("/api/tasks").json()["tasks"]}
        assert tasks["refuse"]["failure_rate"] == 1.0
        # And the dead letter shows its task, reason and arguments
        (letter,) = client.get("/api/dead").json()["letters"]
        assert letter["task"] == "refuse"
        assert letter["summary"] == f"ValueError: refused {SECRET_ARG}"
        assert SECRET_ARG in letter["args"]
        # And the task page reads the task by id, arguments included
        task = client.get(f"/api/task/{refused.id}").json()
        assert task["state"] == "failed" and SECRET_ARG in task["args"]
        # And the schedules page lists the periodic task
        (schedule,) = client.get("/api/schedules").json()["schedules"]
        assert schedule["task"] == "hourly"


def test_hide_args_hides_every_argument_value(app: App) -> None:
    app.send_task("refuse", SECRET_ARG)
    settle(app)
    with client_of(app, Options(hide_args=True)) as client:
        (letter,) = client.get("/api/dead").json()["letters"]
        assert letter["args"] == HIDDEN
        task = client.get(f"/api/task/{letter['task_id']}").json()
        assert task["args"] == HIDDEN
        for path in JSON:
            body = client.get(path).text
            # The reason quotes the argument (the task's own message): only arguments are hidden.
            assert SECRET_ARG not in body.replace(f"refused {SECRET_ARG}", ""), path


def test_requeue_by_id_puts_the_dead_letter_back(app: App) -> None:
    app.send_task("no.such.task")
    settle(app)
    with client_of(app) as client:
        (letter,) = client.get("/api/dead").json()["letters"]
        answer = client.post("/api/dead/requeue", json={"ids": [letter["id"]]},
                             headers={"x-csrf-token": csrf_of(client)})
        assert answer.json() == {"requeued": 1, "unknown": []}
        (queue,) = client.get("/api/overview").json()["queues"]
        assert (queue["dead"], queue["ready"]) == (0, 1)


def test_a_post_without_the_pages_csrf_token_changes_nothing(app: App) -> None:
    app.send_task("no.such.task")
    settle(app)
    with client_of(app) as client:
        client.get("/dead")  # a session, as a browser that visited the dashboard has
        for headers in ({}, {"x-csrf-token": "0" * 64}):
            refused = client.post("/api/dead/purge", json={"confirm": True}, headers=headers)
            assert refused.status_code == 403
            assert "CSRF" in refused.json()["error"]
        # A token is valid for its own session only
        other = client_of(app)
        with other:
            token = csrf_of(other)
        refused = client.post("/api/dead/purge", json={"confirm": True}, headers={"x-csrf-token": token})
        assert refused.status_code == 403
        assert client.get("/api/dead").json()["total"] == 1


def test_a_purge_needs_its_confirmation(app: App) -> None:
    app.send_task("no.such.task")
    settle(app)
    with client_of(app) as client:
        headers = {"x-csrf-token": csrf_of(client)}
        assert client.post("/api/dead/purge", json={}, headers=headers).status_code == 400
        assert client.post("/api/dead/purge", json={"confirm": True}, headers=headers).json() == {"purged": 1}


def test_read_only_refuses_every_action_and_says_so_to_the_page(app: App) -> None:
    app.send_task("no.such.task")
    settle(app)
    with client_of(app, Options(read_only=True)) as client:
        assert 'data-read-only="1"' in client.get("/dead").text
        headers = {"x-csrf-token": csrf_of(client)}
        for path, body in (("/api/dead/requeue", {"ids": ["x"]}), ("/api/dead/requeue-matching", {}),
                           ("/api/dead/purge", {"confirm": True}), ("/api/task/cancel", {"id": "x"})):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 403 and "read-only" in refused.json()["error"]
        assert client.get("/api/dead").json()["total"] == 1


def test_basic_auth_guards_every_page_json_and_asset(app: App) -> None:
    with client_of(app, access=Access(user="ops", password="pw-1234")) as client:
        for path in [*PAGES, *JSON, "/static/dashboard.js"]:
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"ops:nope").decode()
        assert client.get("/", headers={"authorization": f"Basic {wrong}"}).status_code == 401
        good = base64.b64encode(b"ops:pw-1234").decode()
        assert client.get("/api/overview", headers={"authorization": f"Basic {good}"}).status_code == 200


def test_a_token_is_taken_as_bearer_or_from_the_cookie_that_token_query_sets(app: App) -> None:
    token = "tok-0123456789"
    with client_of(app, access=Access(token=token)) as client:
        for path in [*PAGES, *JSON]:
            assert client.get(path).status_code == 401, path
        assert client.get("/?token=wrong-token").status_code == 401
        assert client.get("/api/workers", headers={"authorization": f"Bearer {token}"}).status_code == 200
        # Opening a page with ?token= sets the cookie and sends the browser to the page without it
        first = client.get(f"/tasks?token={token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/tasks"
        assert "httponly" in first.headers["set-cookie"].lower()
        assert client.get("/api/tasks").status_code == 200


def test_dead_letters_page_through_and_search_on_the_server(app: App) -> None:
    for index in range(dead.PAGE_SIZE * 2 + 7):
        app.send_task(f"missing.task{index % 3}", index)
    settle(app)
    with client_of(app) as client:
        pages = [client.get(f"/api/dead?page={n}").json() for n in range(3)]
        assert [len(p["letters"]) for p in pages] == [dead.PAGE_SIZE, dead.PAGE_SIZE, 7]
        assert [p["more"] for p in pages] == [True, True, False]
        ids = [letter["id"] for p in pages for letter in p["letters"]]
        assert len(set(ids)) == len(ids) == pages[0]["total"]
        found = client.get("/api/dead?q=MISSING.TASK2").json()
        assert found["matched"] == (dead.PAGE_SIZE * 2 + 7) // 3
        assert {letter["task"] for letter in found["letters"]} == {"missing.task2"}
        # Requeue all matching moves what the search found, and nothing else
        moved = client.post("/api/dead/requeue-matching", json={"q": "missing.task2"},
                            headers={"x-csrf-token": csrf_of(client)}).json()
        assert moved["requeued"] == found["matched"]
        assert client.get("/api/dead").json()["total"] == len(ids) - found["matched"]


def test_without_the_dashboard_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['uvicorn'] = None\n")
    done = hurtle_cli("dashboard", "-A", "nothing", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hurtle: error: the dashboard needs starlette and uvicorn: pip install 'hurtle[dashboard]'"
    ]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (("--auth", "ops"), "--auth takes USER:PASSWORD, both not empty"),
        (("--auth", "ops:pw-1234", "--token", "tok-0123456789"), "--auth and --token: choose one"),
        (("--token", "short"), "--token: use 8 characters or more"),
        ((), "name the app to show: -A MODULE[:ATTR] (or set HURTLE_APP)"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(
    tmp_path: Path, arguments: tuple[str, ...], said: str
) -> None:
    (tmp_path / "someapp.py").write_text(f"import hurtle\napp = hurtle.App('sqlite:///{tmp_path}/b.db')\n")
    app_args = ("-A", "someapp") if arguments else ()
    done = hurtle_cli("dashboard", *app_args, *arguments, cwd=tmp_path, env={"HURTLE_APP": None})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"hurtle: error: {said}"


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = unique_redis_url()
    (tmp_path / "someapp.py").write_text(f"import hurtle\napp = hurtle.App({url!r})\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = hurtle_cli("dashboard", "-A", "someapp", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"hurtle: error: cannot listen on 127.0.0.1:{port}: in use"]


def test_cancel_from_the_task_page_marks_a_queued_task_and_refuses_a_finished_one(app: App) -> None:
    later = app.send_task("add", 1, 2)  # no worker runs: it stays queued
    with client_of(app) as client:
        headers = {"x-csrf-token": csrf_of(client, f"/task/{later.id}")}
        answer = client.post("/api/task/cancel", json={"id": later.id}, headers=headers).json()
        # (RabbitMQ cannot find a message by id: it cannot tell queued from unknown)
        seen = "queued" if broker_class(app.broker_url).locates_messages else "unknown"
        assert answer == {"requested": True, "state": seen}
        assert client.get(f"/api/task/{later.id}").json()["cancel_requested"] is True
    settle(app)
    with client_of(app) as client:
        assert client.get(f"/api/task/{later.id}").json()["state"] == "cancelled"
        headers = {"x-csrf-token": csrf_of(client)}
        answer = client.post("/api/task/cancel", json={"id": later.id}, headers=headers).json()
        assert answer["requested"] is False and "already cancelled" in answer["why"]
