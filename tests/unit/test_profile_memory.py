"""Memory per task: growth per execution tells a leak from a warm-up."""

from __future__ import annotations

from hurtle.profiling.memory import GROWING_BYTES_PER_EXECUTION, MIN_EXECUTIONS, MemoryView, memory_view

from .profiles import frame, profile_of

TASK = frame("tasks.handle", "app/tasks.py", 10)
MiB = 2**20


def view(
    executions: int, rss_growth: int, memory: dict[str, int] | None = None, limit: int = 10
) -> MemoryView:
    profile = profile_of("tasks.handle", {(TASK,): 1000}, executions=executions, rss_growth=rss_growth,
                         rss_peak=80 * MiB, memory=memory)
    return memory_view(profile, limit)


def test_a_task_appending_to_a_module_level_list_reads_as_growing() -> None:
    # 100 executions, each keeping a 256 KiB item alive in a module-level list.
    leaky = view(100, 100 * 256 * 1024)

    assert leaky.growing
    assert leaky.growth_per_execution == 256 * 1024


def test_a_normal_tasks_warm_up_spread_over_its_executions_is_not_growth() -> None:
    # A first call that imports and fills caches grows the process once by 1.5 MiB.
    normal = view(50, int(1.5 * MiB))

    assert not normal.growing
    assert normal.growth_per_execution < GROWING_BYTES_PER_EXECUTION


def test_a_process_that_shrank_is_not_growing() -> None:
    assert not view(50, -4 * MiB).growing


def test_too_few_executions_cannot_tell_a_leak_from_a_warm_up() -> None:
    few = view(MIN_EXECUTIONS - 1, 20 * MiB)

    assert not few.growing and not few.enough_executions


def test_allocation_sites_are_listed_with_most_bytes_held_first() -> None:
    held = {"app/tasks.py:12": 1000, "app/cache.py:3": 9000, "app/tasks.py:14": 500}

    top = view(20, 0, memory=held, limit=2)

    assert top.sites_recorded
    assert [(s.path, s.line, s.bytes) for s in top.sites] == [
        ("app/cache.py", 3, 9000), ("app/tasks.py", 12, 1000),
    ]


def test_without_profile_memory_no_site_is_recorded() -> None:
    assert not view(20, 0).sites_recorded
