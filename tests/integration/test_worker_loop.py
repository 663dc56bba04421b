"""``hurtle worker --loop``: each process's event loop, chosen by the tasks it runs or named."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Workers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("args", "loop"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")])
def test_async_tasks_run_on_uvloop_unless_told_asyncio(
    workerapp: Any, workers: Workers, args: tuple[str, ...], loop: str
) -> None:
    handle = workerapp.loop_kind.send()

    assert workers.start("-p", "1", "--burst", *args).wait(60) == 0, workers.log()

    assert handle.result(timeout=5).split(".")[0] == loop
    assert f"  loop:    {loop}" in workers.log()
