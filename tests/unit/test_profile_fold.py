"""Folding hurtle's frames out of a profile's stacks, as every view does."""

from __future__ import annotations

from hurtle.profiling.fold import fold

RUN_JOB = "~run_job (hurtle/worker/loop_watch.py:52)"
TASK = "fetch (app.py:10)"
GET = "get (http.py:88)"


def test_plumbing_frames_are_dropped_and_equal_stacks_add_up() -> None:
    stacks = {
        (RUN_JOB, TASK, GET): 300,
        (TASK, GET): 200,
        (RUN_JOB, TASK): 50,
    }
    assert fold(stacks, all_frames=False) == {(TASK, GET): 500, (TASK,): 50}


def test_a_stack_of_plumbing_alone_is_credited_to_the_tasks_own_function() -> None:
    stacks = {(RUN_JOB, TASK, GET): 300, (RUN_JOB,): 40, ("~_profiled_call (h.py:3)", RUN_JOB): 2}
    folded = fold(stacks, all_frames=False)
    assert folded == {(TASK, GET): 300, (TASK,): 42}
    assert sum(folded.values()) == sum(stacks.values())


def test_without_any_frame_of_the_task_a_plumbing_stack_keeps_its_root() -> None:
    assert fold({(RUN_JOB, "~other (h.py:1)"): 7}, all_frames=False) == {(RUN_JOB,): 7}


def test_all_frames_keeps_every_stack_as_it_is() -> None:
    stacks = {(RUN_JOB, TASK, GET): 300, (RUN_JOB,): 40}
    assert fold(stacks, all_frames=True) == stacks


def test_the_root_credited_is_the_one_with_the_most_time() -> None:
    other = "other_entry (app.py:30)"
    stacks = {(RUN_JOB, other): 10, (RUN_JOB, TASK): 20, (RUN_JOB,): 5}
    assert fold(stacks, all_frames=False)[(TASK,)] == 25
