"""`hurtle status` and `hurtle dlq` on a SQLite broker, as a user types them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import hurtle
import hurtle.testing
from hurtle.brokers import Message
from hurtle.brokers.sqlite import SQLiteBroker
from hurtle.envelope import encode, make_envelope
from tests.integration.conftest import dead_letters, hurtle_cli, queue_table, stats

WAITED = 2 * 3600 + 60  # seconds: 2h01m, shown so for a minute


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A broker with two dead letters (one per queue) and one ready message."""
    url = f"sqlite:///{tmp_path}/broker.db"

    async def fill() -> None:
        broker = SQLiteBroker(url, visibility_timeout=30)
        try:
            for queue in ("default", "mail"):
                envelope = make_envelope("tasks.send_mail", ["bob"], {}, queue=queue)
                await broker.enqueue([Message(envelope.id, queue, encode(envelope))])
                (delivery,) = await broker.fetch([queue], 1, timeout=1.0)
                await broker.dead_letter(delivery, f"ValueError: no such user in {queue}\nTraceback...")
            ready = make_envelope("tasks.add", [1, 2], {}, queue="default")
            await broker.enqueue([Message(ready.id, "default", encode(ready))])
        finally:
            await broker.close()

    asyncio.run(fill())
    return url


def test_status_shows_ready_and_dead_per_queue(url: str) -> None:
    out = hurtle_cli("status", "--broker", url)
    assert out.returncode == 0, out.stderr
    rows = queue_table(out.stdout)
    assert rows["default"]["ready"] == "1"
    assert rows["mail"]["dead"] == "1"


def test_status_shows_how_long_the_oldest_ready_message_has_waited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    # An eta in the past: SQLite dates the message from it, so it has waited 2h01m already.
    _enqueue(url, Message("old", "default", b"{}", eta=time.time() - WAITED))
    _enqueue(url, Message("new", "default", b"{}"))
    _enqueue(url, Message("later", "idle", b"{}", eta=time.time() + 3600))

    rows = queue_table(hurtle_cli("status", "--broker", url).stdout)

    assert rows["default"]["oldest"] == "2h01m"  # the oldest, not the newest; in whole minutes
    assert rows["idle"]["oldest"] == "0s"  # a delayed message is not ready: nothing waits


def test_status_json_gives_the_oldest_ready_age_in_seconds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    _enqueue(url, Message("old", "default", b"{}", eta=time.time() - WAITED))

    out = hurtle_cli("status", "--broker", url, "--json")

    assert out.returncode == 0, out.stderr
    (queue,) = json.loads(out.stdout)["queues"]
    assert WAITED <= queue["oldest_ready_age"] < WAITED + 3600


def _enqueue(url: str, *messages: Message) -> None:
    async def send() -> None:
        broker = SQLiteBroker(url, visibility_timeout=30)
        try:
            await broker.enqueue(list(messages))
        finally:
            await broker.close()

    asyncio.run(send())


def test_dlq_list_shows_the_task_and_the_first_line_of_the_reason(url: str) -> None:
    out = hurtle_cli("dlq", "list", "--broker", url)
    assert out.returncode == 0, out.stderr
    assert "tasks.send_mail" in out.stdout
    assert "no such user in mail" in out.stdout and "no such user in default" in out.stdout
    assert "Traceback" not in out.stdout


def test_dlq_requeue_puts_a_dead_letter_back_on_its_queue(url: str) -> None:
    out = hurtle_cli("dlq", "requeue", "--all", "--broker", url)
    assert out.returncode == 0 and "requeued 2" in out.stdout
    assert "no dead letters" in hurtle_cli("dlq", "list", "--broker", url).stdout
    status = hurtle_cli("status", "--broker", url).stdout
    assert queue_table(status)["mail"]["ready"] == "1"


def test_dlq_list_shows_each_dead_letters_task_id(url: str) -> None:
    out = hurtle_cli("dlq", "list", "--broker", url)
    assert out.returncode == 0, out.stderr
    assert all(letter.message_id in out.stdout for letter in dead_letters(url))


def test_dlq_requeue_takes_a_task_id_as_well_as_a_dead_letter_id(url: str) -> None:
    by_queue = {letter.queue: letter for letter in dead_letters(url)}

    out = hurtle_cli("dlq", "requeue", by_queue["mail"].message_id, by_queue["default"].id, "--broker", url)

    assert out.returncode == 0, out.stderr
    assert "requeued 2 message(s)" in out.stdout
    assert dead_letters(url) == []
    assert stats(url, "mail").ready == 1 and stats(url, "default").ready == 2


@pytest.mark.parametrize("named", [True, False], ids=["by-task-id", "all"])
def test_dlq_requeue_forgets_the_stored_failure_so_the_sender_waits_for_the_new_run(
    tmp_path: Path, named: bool
) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    app = hurtle.App(url)

    @app.task(retries=0)
    def flaky() -> None:
        raise ValueError("partner down")

    handle = flaky.send()
    hurtle.testing.drain(app)
    assert handle.status() == "failed"

    out = hurtle_cli("dlq", "requeue", handle.id if named else "--all", "--broker", url)

    assert out.returncode == 0 and "requeued 1 message(s)" in out.stdout, out.stderr
    assert handle.status() == "queued"
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.1)
    app.close()


def test_dlq_requeue_names_the_ids_it_did_not_find_and_exits_1(url: str) -> None:
    mail = next(letter for letter in dead_letters(url) if letter.queue == "mail")

    out = hurtle_cli("dlq", "requeue", "no-such-id", mail.message_id, "999", "--broker", url)

    assert out.returncode == 1, out
    assert "requeued 1 message(s)" in out.stdout
    assert out.stderr.strip().splitlines() == [
        "hurtle dlq requeue: no dead letter has the id or task id no-such-id, 999"
    ]
    assert stats(url, "mail").ready == 1


def test_dlq_purge_deletes_one_queues_dead_letters(url: str) -> None:
    out = hurtle_cli("dlq", "purge", "-q", "mail", "--yes", "--broker", url)
    assert out.returncode == 0 and "deleted 1" in out.stdout
    listing = hurtle_cli("dlq", "list", "--broker", url).stdout
    assert "no such user in default" in listing and "no such user in mail" not in listing


def test_dlq_purge_asks_first_and_a_no_keeps_everything(url: str) -> None:
    out = hurtle_cli("dlq", "purge", "--broker", url, input="n\n")
    assert out.returncode == 0
    assert "no such user in mail" in hurtle_cli("dlq", "list", "--broker", url).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--broker", "nosuch://x"],
        ["status", "task"],
        ["status", "task", " "],
        ["status", "task", "a", "b"],
        ["status", "nonsense"],
        ["status", "--watch", "--json"],
        ["status", "--interval", "1"],
        ["status", "--watch", "--interval", "0"],
        ["status", "--watch", "task", "some-id"],
        ["status", "task", "some-id", "--broker", "sqlite:////no/such/dir/x.db"],
        ["dlq", "list", "--broker", "sqlite:////no/such/dir/x.db"],
        ["dlq", "requeue"],
        ["dlq", "requeue", "some-id", "--all"],
        ["dlq", "nonsense"],
        ["worker"],
        ["worker", "nosuch", "-t", "many"],
        ["worker", "nosuch", "-t", "0"],
        ["worker", "nosuch", "-t", "4", "--max-threads", "8"],
        ["no-such-command"],
    ],
)
def test_a_user_error_at_the_cli_is_one_line_and_exit_code_2(args: list[str]) -> None:
    out = hurtle_cli(*args)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"]])
@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0?prefx=app1", "amqp://guest:guest@127.0.0.1:5672/?prefx=app1"]
)
def test_a_misspelt_url_option_is_one_line_naming_it_and_exit_2(command: list[str], url: str) -> None:
    out = hurtle_cli(*command, "--broker", url)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "unknown option 'prefx'" in out.stderr and "did you mean 'prefix'" in out.stderr
