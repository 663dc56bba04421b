"""Benchmarks run one at a time, on one of the test processes, whatever the others run.

The bench tests share queue names on the one RabbitMQ and Redis (the peers' own
names, and hurtle's ``hurtlebench`` prefix on RabbitMQ), and each run measures the
machine: two at once broke each other ("queue 'bench-io' holds 60 message(s) before
the run"). Their modules say so with ``xdist_group("bench")``, but pytest-xdist's
``--dist loadgroup`` groups by renaming each test's node id through an attribute
(``_nodeid``) that pytest 9 no longer reads: the groups were silently ignored. So
the grouping is done here, where xdist asks for its scheduler: the tests of the
modules below form one unit of work, every other test is a unit of its own, as
``loadgroup`` would make them.
"""

from __future__ import annotations

from typing import Any

#: Modules whose tests run one after another on one process (each also marked
#: ``xdist_group("bench")``, which a pytest-xdist that works with pytest 9 would honour).
TOGETHER = {
    "bench": (
        "tests/integration/test_bench.py::",
        "tests/integration/test_bench_peers.py::",
        "tests/integration/test_bench_ping.py::",
    ),
}


def group_of(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: its group's name, or itself."""
    for name, modules in TOGETHER.items():
        if nodeid.startswith(modules):
            return name
    return nodeid


def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
    """``--dist loadgroup`` with the groups above; any other ``--dist`` is xdist's own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped here
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)
