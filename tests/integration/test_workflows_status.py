"""``hurtle status task ID`` on a workflow's id: its tree, each part's state and
times, as a user runs it (SQLite; real ``hurtle worker`` processes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import APPS, Workers, hurtle_cli


@pytest.fixture
def flowapp(worker_env: dict[str, str]) -> Iterator[Any]:
    sys.modules.pop("flowapp", None)
    import flowapp

    yield flowapp
    flowapp.app.close()
    sys.modules.pop("flowapp", None)


def status_task(task_id: str, *args: str) -> str:
    out = hurtle_cli("status", "task", task_id, "-A", "flowapp", *args, cwd=APPS)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_waiting_chain_shows_its_steps_the_first_queued(flowapp: Any) -> None:
    handle = (flowapp.step.si(0) | flowapp.step.s() | flowapp.step.s()).send()

    data = json.loads(status_task(handle.id, "--json"))

    assert data["state"] == "queued"
    chain = data["workflow"]
    assert chain["kind"] == "chain"
    expected = zip([child.id for child in handle.children], ["queued", "unknown", "unknown"], strict=True)
    assert [(s["id"], s["state"]) for s in chain["children"]] == list(expected)


def test_a_finished_chord_shows_every_part_succeeded_with_its_times(flowapp: Any, workers: Workers) -> None:
    members = hurtle.group(flowapp.member.si(i) for i in range(30))  # .si: not given the step's result
    handle = (flowapp.step.si(0) | hurtle.chord(members, flowapp.collect.s())).send()
    assert workers.start("--burst", app="flowapp").wait(60) == 0, workers.log()

    data = json.loads(status_task(handle.id, "--json"))
    text = status_task(handle.id)

    assert (data["state"], data["value"]) == ("succeeded", 30)
    step, chord = data["workflow"]["children"]
    assert chord["kind"] == "chord"
    group, callback = chord["children"]
    assert (group["kind"], group["state"], len(group["children"])) == ("group", "succeeded", 30)
    assert all(p["state"] == "succeeded" and p["finished_at"] >= p["started_at"] > 0
               for p in [step, callback, *group["children"]])
    assert "group of 30" in text and "… 10 more: 10 succeeded" in text
    assert flowapp.collect.name in text
