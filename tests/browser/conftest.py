"""A real browser on the dashboard: Debian's Chromium driven by Playwright.

``scripts/test.sh`` installs the ``chromium`` package when it is missing (as it
installs Redis); Playwright drives that executable (``executable_path``) and never
downloads a browser of its own. Without a browser the tests are skipped, and with
``CI=true`` they fail: CI must never go green by skipping them.

Each test gets an app of its own on the shared Redis (a key prefix of its own),
a ``hurtle worker`` and a ``hurtle dashboard`` process, both as a user starts them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hurtle import App
from tests.integration.conftest import terminate, wait_until
from tests.redis_server import free_port, unique_redis_url

CHROMIUM = os.environ.get("HURTLE_TEST_CHROMIUM", "/usr/bin/chromium")
#: Set to write the README's screenshots into docs/screenshots (normal runs leave the tree alone).
ENV_SCREENSHOTS = "HURTLE_SCREENSHOTS"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"

APP = """\
import os
import pathlib
import time

import hurtle

app = hurtle.App()  # $HURTLE_BROKER
FIRST_RUN = pathlib.Path(os.environ["BROWSERAPP_DIR"]) / "flaky-ran"


@app.task(name="shop.flaky", retries=0)
def flaky(word: str) -> str:
    if not FIRST_RUN.exists():
        FIRST_RUN.write_text("ran")
        raise RuntimeError(f"the first run of {word} fails")
    return word.upper()


def scale(size: int, seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        size = (size * 31 + 7) % 1000003
    return size


def sharpen(size: int) -> int:
    return scale(size, 0.01)


@app.task(name="shop.resize_image")
def resize_image(size: int) -> int:
    return sharpen(scale(size, 0.02))


@app.task(name="shop.send_receipt")
async def send_receipt(order: int) -> int:
    return order


@app.task(name="shop.total")
def total(sizes: list[int]) -> int:
    return sum(sizes)


@app.periodic(every=600.0, name="shop.nightly_report")
def nightly_report() -> None:
    pass
"""


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (required in CI: scripts/test.sh installs it)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless, from the system's package; one per test module, so
    Playwright's own event loop has stopped before any asyncio test runs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the dev extra)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Shop:
    """An app on Redis of the test's own, with a worker and a dashboard running."""

    directory: Path
    env: dict[str, str]
    app: App
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    url: str = ""

    def start(self, *args: str, name: str) -> subprocess.Popen[str]:
        log = open(self.directory / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hurtle", *args], cwd=self.directory, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        self.procs.append(proc)
        return proc

    def tasks(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        """The app's module itself, imported here (its tasks build workflows)."""
        monkeypatch.setenv("BROWSERAPP_DIR", str(self.directory))
        monkeypatch.setenv("HURTLE_BROKER", self.env["HURTLE_BROKER"])
        monkeypatch.syspath_prepend(str(self.directory))
        # Recorded as absent, so the module (bound to this test's broker) is forgotten after it.
        monkeypatch.setitem(sys.modules, "shopapp", None)
        del sys.modules["shopapp"]
        return importlib.import_module("shopapp")

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text()

    def dashboard(self, *options: str) -> str:
        """Start ``hurtle dashboard`` with ``options``; its URL once it answers."""
        port = free_port()
        proc = self.start("dashboard", "-A", "shopapp", "--port", str(port), *options, name="dashboard")
        self.url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert proc.poll() is None, self.log("dashboard")
            try:
                urllib.request.urlopen(self.url + "/static/dashboard.css", timeout=5).close()
            except urllib.error.HTTPError:
                return True  # answered (401 with --auth or --token)
            except OSError:
                return False
            return True

        wait_until(answers, "the dashboard to answer")
        return self.url

    def stop(self) -> None:
        for proc in self.procs:
            terminate(proc, 15)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    (tmp_path / "shopapp.py").write_text(APP)
    env = {
        **os.environ, "HURTLE_BROKER": unique_redis_url(), "BROWSERAPP_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    env.pop("HURTLE_APP", None)
    env.pop("HURTLE_RESULTS", None)
    app = App(env["HURTLE_BROKER"])
    made = Shop(tmp_path, env, app)
    yield made
    made.stop()
    app.close()
    for log in sorted(tmp_path.glob("*.log")):  # shown with a failure's report, else dropped
        print(f"--- {log.name} ---\n{log.read_text(errors='replace')}")


@pytest.fixture
def page_of(browser: Any) -> Iterator[Callable[..., Any]]:
    """``page_of(**context_options)``: a new page that fails the test on any script error."""
    contexts = []
    errors: list[str] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 820}, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(30_000)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


def screenshot(page: Any, name: str) -> None:
    """Write ``docs/screenshots/NAME.png`` when ``$HURTLE_SCREENSHOTS`` asks for it."""
    if os.environ.get(ENV_SCREENSHOTS):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
