"""Reading a profile back: folding, total and self shares, callers, hot lines, timing."""

from __future__ import annotations

import pytest

from hurtle.profiling.report import (
    ENTRY,
    callers,
    fold,
    function_times,
    hot_lines,
    matching_functions,
    ranked,
    seen_us,
    timing,
)

from .profiles import asyncio_frame, frame, hurtle_frame, profile_of

TASK = frame("tasks.handle", "app/tasks.py", 10)
PARSE = frame("parse", "app/parsing.py", 3)
WALK = frame("walk", "app/parsing.py", 20)
SAVE = frame("Store.save", "app/store.py", 7)


def totals(stacks: dict[tuple[str, ...], int]) -> dict[str, tuple[int, int]]:
    return {time.label: (time.total_us, time.self_us) for time in function_times(stacks, {})}


def test_folding_takes_plumbing_frames_out_and_keeps_the_others_in_order() -> None:
    profile = profile_of("tasks.handle", {
        (TASK, hurtle_frame("Executor.call"), PARSE, asyncio_frame("sleep"), WALK): 100,
    }, executions=1)

    assert fold(profile) == {(TASK, PARSE, WALK): 100}


def test_all_frames_keeps_the_plumbing() -> None:
    stack = (TASK, hurtle_frame("Executor.call"), PARSE)
    profile = profile_of("tasks.handle", {stack: 100}, executions=1)

    assert fold(profile, all_frames=True) == {stack: 100}


def test_a_stack_of_plumbing_only_is_credited_to_the_tasks_own_function() -> None:
    profile = profile_of("tasks.handle", {
        (hurtle_frame("Executor.call"), asyncio_frame("sleep")): 40,
        (hurtle_frame("Executor.call"), TASK, PARSE): 60,
    }, executions=1)

    folded = fold(profile)

    assert folded == {(TASK,): 40, (TASK, PARSE): 60}
    assert sum(folded.values()) == seen_us(profile)


def test_a_profile_of_plumbing_only_keeps_its_roots() -> None:
    stack = (hurtle_frame("Executor.call"), asyncio_frame("sleep"))

    assert fold(profile_of("tasks.handle", {stack: 40}, executions=1)) == {stack[:1]: 40}


def test_stacks_equal_once_folded_are_merged() -> None:
    profile = profile_of("tasks.handle", {
        (TASK, hurtle_frame("Executor.call"), PARSE): 30,
        (TASK, asyncio_frame("run"), PARSE): 20,
    }, executions=1)

    assert fold(profile) == {(TASK, PARSE): 50}


def test_total_counts_every_stack_a_function_is_in_and_self_only_where_it_is_innermost() -> None:
    stacks = {(TASK, PARSE, WALK): 50, (TASK, PARSE): 20, (TASK, SAVE): 30}

    assert totals(stacks) == {TASK: (100, 0), PARSE: (70, 20), WALK: (50, 50), SAVE: (30, 30)}


def test_a_recursive_function_is_counted_once_per_stack() -> None:
    stacks = {(TASK, WALK, WALK, WALK): 40, (TASK, WALK): 10}

    assert totals(stacks)[WALK] == (50, 50)


def test_ranking_by_self_puts_the_innermost_time_first() -> None:
    times = function_times({(TASK, PARSE, WALK): 50, (TASK, PARSE): 20, (TASK, SAVE): 30}, {})

    assert [t.label for t in ranked(times, "total")] == [TASK, PARSE, WALK, SAVE]
    assert [t.label for t in ranked(times, "self")] == [WALK, SAVE, PARSE, TASK]


def test_equal_totals_rank_a_caller_before_what_it_calls() -> None:
    times = function_times({(TASK, SAVE, PARSE, WALK): 50, (TASK,): 10}, {})

    assert [t.label for t in ranked(times, "total")] == [TASK, SAVE, PARSE, WALK]


def test_each_function_carries_the_executions_it_was_seen_in() -> None:
    (time,) = function_times({(TASK,): 10}, {TASK: 7})

    assert time.executions_seen == 7


def test_callers_split_a_functions_total_by_the_frame_right_above_it() -> None:
    stacks = {(TASK, PARSE, WALK): 30, (TASK, SAVE, WALK): 10, (TASK, WALK): 5, (TASK, PARSE): 50}

    found = callers(stacks, WALK)

    assert [(c.label, c.us) for c in found] == [(PARSE, 30), (SAVE, 10), (TASK, 5)]
    assert sum(c.us for c in found) == totals(stacks)[WALK][0]


def test_a_recursive_function_is_credited_to_its_outermost_caller() -> None:
    found = callers({(TASK, PARSE, WALK, WALK): 30}, WALK)

    assert [(c.label, c.us) for c in found] == [(PARSE, 30)]


def test_the_task_function_is_called_by_the_task_entry() -> None:
    assert [(c.label, c.us) for c in callers({(TASK, PARSE): 30}, TASK)] == [(ENTRY, 30)]


@pytest.mark.parametrize("query", ["parse (app/parsing.py:3)", "parse"])
def test_a_function_is_found_by_its_whole_label_or_its_qualname(query: str) -> None:
    assert matching_functions({(TASK, PARSE): 1}, query) == [PARSE]


def test_a_function_is_found_by_the_end_of_its_qualname_after_a_dot() -> None:
    assert matching_functions({(TASK, SAVE): 1}, "save") == [SAVE]
    assert matching_functions({(TASK, SAVE): 1}, "ave") == []


def test_a_name_two_functions_share_matches_both() -> None:
    other_parse = frame("parse", "app/other.py", 9)

    found = matching_functions({(TASK, PARSE): 1, (TASK, other_parse): 1}, "parse")

    assert found == sorted([PARSE, other_parse])


def test_hot_lines_are_the_tasks_own_lines_with_most_time_first() -> None:
    profile = profile_of("tasks.handle", {(TASK,): 100}, executions=1, lines={
        "app/tasks.py:12": 10, "app/tasks.py:14": 70, "app/tasks.py:13": 20,
    })

    assert [(line.path, line.line, line.us) for line in hot_lines(profile, 2)] == [
        ("app/tasks.py", 14, 70), ("app/tasks.py", 13, 20),
    ]


def test_timing_splits_wall_time_per_execution_into_cpu_and_waiting() -> None:
    profile = profile_of("tasks.handle", {(TASK,): 40_000}, executions=4, wall_us=40_000, cpu_us=10_000)

    split = timing(profile)

    assert (split.wall_ms, split.cpu_ms, split.waiting_ms) == (10.0, 2.5, 7.5)
    assert (split.cpu_share, split.waiting_share) == (0.25, 0.75)
    assert (split.sync_executions, split.async_executions) == (4, 0)


def test_cpu_time_a_little_over_wall_time_reads_as_all_cpu() -> None:
    split = timing(profile_of("tasks.handle", {(TASK,): 1000}, executions=1, wall_us=1000, cpu_us=1010))

    assert (split.cpu_share, split.waiting_share) == (1.0, 0.0)
