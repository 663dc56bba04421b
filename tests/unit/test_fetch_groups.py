"""Which queues a process fetches together: one group per kind of task."""

from __future__ import annotations

from hurtle import App
from hurtle.worker.fetch_groups import BOTH, FetchGroup, fetch_groups


def make_app() -> App:
    app = App("memory://fetch-groups")

    @app.task(queue="threads")
    def one() -> None: ...

    @app.task(queue="loop")
    async def two() -> None: ...

    @app.task(queue="mixed")
    def three() -> None: ...

    @app.task(queue="mixed")
    async def four() -> None: ...

    return app


def test_queues_are_grouped_by_the_kinds_of_task_they_hold_in_the_order_given() -> None:
    app = make_app()

    groups = fetch_groups(app.tasks.values(), ["loop", "threads", "mixed", "unknown"], ordered=False)

    assert groups == [
        FetchGroup(("loop",), frozenset({True})),
        FetchGroup(("threads",), frozenset({False})),
        FetchGroup(("mixed", "unknown"), BOTH),  # a queue of tasks the worker does not know: either kind
    ]


def test_weighted_or_strict_queues_stay_one_group() -> None:
    app = make_app()

    groups = fetch_groups(app.tasks.values(), ["loop", "threads"], ordered=True)

    assert groups == [FetchGroup(("loop", "threads"), BOTH)]
