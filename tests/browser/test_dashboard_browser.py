"""The dashboard in Chromium, as a person uses it: every page against a real worker
and broker, a dead letter requeued by clicking and run again, ``--read-only`` and
access control as a browser meets them, and attacker-written names shown as text.

``HURTLE_SCREENSHOTS=1`` writes the README's screenshots from these runs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

import hurtle
from tests.browser.conftest import Shop, screenshot
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.slow

SCRIPT_NAME = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


def api(shop: Shop, path: str) -> Any:
    with urllib.request.urlopen(shop.url + path, timeout=10) as answer:
        return json.loads(answer.read())


def tasks_in_history(shop: Shop) -> set[str]:
    return {task["task"] for task in api(shop, "/api/tasks")["tasks"]}


def a_worker_ran_everything(shop: Shop) -> str:
    """Work of every kind, run by a real ``hurtle worker``: successes, a failure
    for good (dead-lettered), and profiles, after a deploy marker."""
    resized = [shop.app.send_task("shop.resize_image", size) for size in range(12)]
    for order in range(20):
        shop.app.send_task("shop.send_receipt", order)
    shop.app.send_task("shop.flaky", "order-17")
    shop.app.mark_deploy("v1.2")
    shop.start("worker", "shopapp", "-p", "1", "--profile", "all", name="worker")

    def settled() -> bool:
        (queue,) = [q for q in api(shop, "/api/overview")["queues"] if q["name"] == "default"]
        return queue["dead"] == 1 and queue["ready"] == 0 and queue["in_flight"] == 0

    wait_until(settled, "the worker to settle every message")
    # At least: shop.nightly_report runs too when the test spans a multiple of 600 s since the epoch.
    ran = {"shop.resize_image", "shop.send_receipt", "shop.flaky"}
    wait_until(lambda: ran <= tasks_in_history(shop), "the task history of every task")
    return resized[0].id


def test_every_page_shows_the_real_worker_and_its_work(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard()
    resized = a_worker_ran_everything(shop)
    page = page_of()
    # Overview: the queue, its dead letters, its charts
    page.goto(shop.url + "/")
    page.wait_for_selector("#queues td:text-is('default')")
    assert page.locator("svg.chart").count() >= 2
    screenshot(page, "overview")
    # Workers: the process, its slots and memory
    page.goto(shop.url + "/workers")
    row = page.wait_for_selector("#workers tbody tr")
    assert "default" in row.inner_text() and "MiB" in row.inner_text()
    screenshot(page, "workers")
    # Tasks: each task's figures; a click draws its charts
    page.goto(shop.url + "/tasks")
    page.click("#tasks td:text-is('shop.resize_image')")
    page.wait_for_selector(".chart-box.wide h3:text-is('shop.resize_image')")
    screenshot(page, "tasks")
    # Dead letters: both, one inspected
    page.goto(shop.url + "/dead")
    page.wait_for_selector("#dead td:text-is('shop.flaky')")
    screenshot(page, "dead-letters")
    page.click("#dead tr.letter:has-text('shop.flaky') button.inspect")
    page.wait_for_selector("#dead tr.details pre:has-text('the first run of order-17 fails')")
    # One task by id: from the dead letter's link, and one that succeeded
    page.click("#dead tr.letter:has-text('shop.flaky') td a")
    page.wait_for_selector("#task .state.failed")
    assert "order-17" in page.inner_text("#task")
    page.goto(f"{shop.url}/task/{resized}")
    page.wait_for_selector("#task .state.succeeded")
    screenshot(page, "task")
    # Profiles: a flame graph of a profiled task
    page.goto(shop.url + "/profiles#shop.resize_image")
    page.wait_for_selector("#flame svg.flame g.frame text:text-matches('^sharpen [(]shopapp[.]py:')")
    screenshot(page, "profiles")
    # Schedules: the periodic task, its next run and the leader
    page.goto(shop.url + "/schedules")
    page.wait_for_selector("#schedules td:text-is('shop.nightly_report')")
    page.wait_for_selector("p.note:has-text('leader: ')")
    screenshot(page, "schedules")


def test_pages_update_without_reloading(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard()
    page = page_of()
    page.goto(shop.url + "/")
    page.wait_for_selector("#content p.note:has-text('no queue has been sent to yet')")
    # When a message is sent while the page is open, it shows up on its own
    shop.app.send_task("shop.send_receipt", 1)
    page.wait_for_selector("#queues td:text-is('default')")


def test_a_workflow_shows_its_tree_with_each_part_s_state(
    shop: Shop, page_of: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shopapp = shop.tasks(monkeypatch)
    flow = hurtle.chord(hurtle.group(shopapp.resize_image.s(size) for size in range(3)), shopapp.total.s())
    handle = flow.send()
    shop.dashboard()
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    assert handle.result(timeout=60) > 0
    page = page_of()
    page.goto(f"{shop.url}/task/{handle.id}")
    tree = page.wait_for_selector("#workflow")
    page.wait_for_selector("#workflow a:text-is('shop.total') ~ .state.succeeded")
    assert tree.inner_text().count("shop.resize_image") == 3
    assert page.locator("#workflow .state.succeeded").count() >= 4
    shopapp.app.close()


def test_a_dead_letter_requeued_by_clicking_runs_again(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard()
    handle = shop.app.send_task("shop.flaky", "order-42")
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    page = page_of()
    page.goto(shop.url + "/dead")
    row = page.wait_for_selector("#dead tr.letter:has-text('shop.flaky')")
    # When a person clicks "requeue" on it and confirms
    page.once("dialog", lambda dialog: dialog.accept())
    row.query_selector("button.requeue-one").click()
    page.wait_for_selector("p.message.ok:has-text('requeued 1 message(s)')")
    # Then the worker runs it again, and this time it succeeds
    assert handle.result(timeout=60) == "ORDER-42"
    page.goto(f"{shop.url}/task/{handle.id}")
    page.wait_for_selector("#task .state.succeeded")
    assert "dashboard" in shop.log("dashboard") and "requeue by 127.0.0.1" in shop.log("dashboard")


def test_read_only_shows_no_action_and_refuses_one_sent_anyway(
    shop: Shop, page_of: Callable[..., Any]
) -> None:
    shop.dashboard("--read-only")
    shop.app.send_task("no.such.task")
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    page = page_of()
    page.goto(shop.url + "/dead")
    page.wait_for_selector("#dead td:text-is('no.such.task')")
    assert page.locator("header .mode").inner_text() == "read-only"
    actions = ("#requeue-selected", "#requeue-matching", "#purge", "button.requeue-one")
    actions += ("input[type=checkbox]",)
    for action in actions:
        assert page.locator(action).count() == 0, action
    # A request the page's own script would send, sent anyway with its CSRF token
    status = page.evaluate("""async () => (await fetch('/api/dead/purge', {method: 'POST',
        headers: {'content-type': 'application/json', 'x-csrf-token': document.body.dataset.csrf},
        body: JSON.stringify({confirm: true})})).status""")
    assert status == 403
    assert api(shop, "/api/dead")["total"] == 1


def test_a_token_dashboard_serves_nothing_until_the_token_is_given(
    shop: Shop, page_of: Callable[..., Any]
) -> None:
    shop.dashboard("--token", "t0ken-for-tests")
    page = page_of()
    refused = page.goto(shop.url + "/workers")
    assert refused.status == 401 and "token is required" in page.inner_text("body")
    # Opening the page with ?token= keeps the token in a cookie and drops it from the address
    page.goto(shop.url + "/workers?token=t0ken-for-tests")
    assert page.url == shop.url + "/workers"
    page.wait_for_selector("#status:has-text('updated')")
    assert page.goto(shop.url + "/dead").status == 200


def test_a_basic_auth_dashboard_needs_the_credentials(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard("--auth", "ops:pass-for-tests")
    # Without the credentials, or with wrong ones, the browser's requests are refused
    assert page_of().request.get(shop.url + "/").status == 401
    wrong = page_of(http_credentials={"username": "ops", "password": "nope"})
    for path in ("/", "/api/overview", "/static/dashboard.js"):
        assert wrong.request.get(shop.url + path).status == 401, path
    page = page_of(http_credentials={"username": "ops", "password": "pass-for-tests"})
    assert page.goto(shop.url + "/").status == 200
    page.wait_for_selector("#status:has-text('updated')")


def test_a_task_name_written_as_markup_shows_as_text(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard()
    shop.app.send_task(SCRIPT_NAME, "x")
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    page = page_of()
    page.goto(shop.url + "/dead")
    cell = page.wait_for_selector("#dead td.task-name")
    # The name is shown exactly as written, its reason too, and nothing of it ran
    assert cell.inner_text() == SCRIPT_NAME
    assert SCRIPT_NAME in page.inner_text("#dead td.reason")
    assert page.locator("#content script, #content img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_search_then_requeue_all_matching_moves_only_what_matched(
    shop: Shop, page_of: Callable[..., Any]
) -> None:
    shop.dashboard()
    for index in range(3):
        shop.app.send_task("gone.alpha", index)
        shop.app.send_task("gone.beta", index)
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    page = page_of()
    page.goto(shop.url + "/dead")
    page.wait_for_selector("p.note:has-text('6 dead letter(s)')")
    # When a person searches for one task's name and requeues all that matched
    page.fill("input[type=search]", "ALPHA")
    page.click("form button[type=submit]")
    page.wait_for_selector("p.note:has-text('3 match(es)')")
    assert {cell.inner_text() for cell in page.query_selector_all("#dead td.task-name")} == {"gone.alpha"}
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#requeue-matching")
    page.wait_for_selector("p.message.ok:has-text('requeued 3 message(s)')")
    # Then the worker dead-letters them again (it knows no such task), and the others never moved
    def died_again() -> bool:
        return bool(api(shop, "/api/dead?q=alpha")["matched"] == 3 and api(shop, "/api/dead")["total"] == 6)

    wait_until(died_again, "the requeued messages to die again")
    assert api(shop, "/api/dead?q=beta")["matched"] == 3


def test_a_queued_task_is_cancelled_from_its_page(shop: Shop, page_of: Callable[..., Any]) -> None:
    shop.dashboard()
    handle = shop.app.send_task("shop.send_receipt", 7)  # no worker yet: it waits
    page = page_of()
    page.goto(f"{shop.url}/task/{handle.id}")
    page.wait_for_selector("#task .state.queued")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("#task dd:has-text('requested, not yet carried out by a worker')")
    # When a worker starts, it never runs the task, and the page says it was cancelled
    shop.start("worker", "shopapp", "-p", "1", name="worker")
    page.wait_for_selector("#task .state.cancelled")
    assert page.locator("#cancel").is_hidden()
