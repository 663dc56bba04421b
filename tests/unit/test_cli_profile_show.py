"""`hurtle profile show|list|reset` as a user types them, on profiles kept in memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hurtle import tally_source
from hurtle.cli import cli
from hurtle.errors import ConfigurationError
from hurtle.profiling import record
from hurtle.tallies import MemoryTallies

from .profiles import frame, hurtle_frame, tally_fields
from .seed_profiles import CONFIGURE_MAPPERS, ORM_PER_CALL, REAL_WORK, SETUP_MODELS, N

APP_MODULE = "profiled_app"
APP_URL = "memory://profile-cli"


@dataclass
class Kept:
    """Profiles kept in memory where the commands read them, and what they asked to open."""

    store: MemoryTallies = field(default_factory=MemoryTallies)
    opened: list[tuple[Any, ...]] = field(default_factory=list)

    def keep(self, task: str, fields: dict[str, int]) -> None:
        highest = {name: fields.pop(name) for name in (record.RSS_PEAK, record.LAST)}
        asyncio.run(self.store.add(record.key(task), fields, record.TTL, highest=highest))

    def tasks(self) -> list[str]:
        return [record.task_name(key) for key in asyncio.run(self.store.keys(record.PREFIX))]

    def keep_seed_profiles(self) -> None:
        lines = {"app/tasks.py:22": 750_000, "app/tasks.py:23": 200_000}
        orm = tally_fields(ORM_PER_CALL, executions=N, cpu_us=600_000, lines=lines)
        self.keep("app.tasks.record_event", orm)
        self.keep("app.tasks.build_monthly_report", tally_fields(REAL_WORK, executions=N))


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kept:
    """An app module in the current directory, and its profiles kept in memory."""
    (tmp_path / f"{APP_MODULE}.py").write_text(f"import hurtle\n\napp = hurtle.App({APP_URL!r})\n")
    monkeypatch.chdir(tmp_path)
    profiles = Kept()

    def open_tallies(broker_url: Any, results_url: Any, directory: str | None) -> MemoryTallies:
        profiles.opened.append((broker_url, results_url, directory))
        return profiles.store

    monkeypatch.setattr(tally_source, "open_tallies", open_tallies)
    return profiles


def hurtle(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})


def show(*args: str) -> Result:
    return hurtle("profile", "show", *args, "-A", APP_MODULE)


def show_json(*args: str) -> dict[str, Any]:
    result = show(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_show_gives_the_time_split_the_functions_and_the_setup_to_move(kept: Kept) -> None:
    kept.keep_seed_profiles()

    result = show("record_event")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "app.tasks.record_event" in out and f"{N} execution(s) profiled (0 async, {N} sync)" in out
    assert "wall 25.00 ms per execution: on CPU 15.00 ms (60%), waiting 10.00 ms (40%)" in out
    assert "setup_models runs in every execution (75% of the task's time)" in out
    assert "@app.on_worker_start or @app.on_preload" in out
    setup_row = next(line for line in out.splitlines() if "app/models.py:5" in line)
    assert "75.0%" in setup_row
    assert "app/tasks.py:22" in out  # the slow line
    assert " sqlalchemy/orm/mapper.py:4100 " in out  # without the site-packages directory


def test_show_reads_the_apps_broker(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert show("record_event", "--profile-dir", "profiles").exit_code == 0

    assert kept.opened == [(APP_URL, None, "profiles")]


def test_show_json_has_every_figure_and_a_functions_list(kept: Kept) -> None:
    kept.keep_seed_profiles()

    data = show_json("app.tasks.record_event")

    assert data["task"] == "app.tasks.record_event" and data["executions"] == N
    assert data["wall_ms_per_execution"] == 25.0 and data["waiting_share"] == pytest.approx(0.4)
    setup = next(f for f in data["functions"] if f["function"] == "setup_models")
    assert setup["file"] == "app/models.py" and setup["line"] == 5
    mappers = next(f for f in data["functions"] if f["function"] == "configure_mappers")
    assert mappers["file"].endswith("/site-packages/sqlalchemy/orm/mapper.py")
    assert setup["total"] == pytest.approx(0.75) and setup["self"] == 0.0
    assert setup["total_ms_per_execution"] == pytest.approx(750_000 / N / 1000)
    assert [s["function"] for s in data["setup_suspects"]] == ["setup_models"]
    assert data["memory"]["growing"] is False
    assert "callers" not in data


def test_json_says_how_far_below_the_task_each_function_was_seen(kept: Kept) -> None:
    kept.keep_seed_profiles()

    functions = show_json("record_event")["functions"]

    depths = {f["function"]: f["depth"] for f in functions}
    assert depths["record_event"] == 0  # the task's own function
    assert depths["setup_models"] == 1 and depths["Session.commit"] == 1  # what it calls itself
    assert depths["configure_mappers"] == 2 and depths["Mapper._post_configure_properties"] == 3


def test_real_work_shows_no_setup_suspect(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert show_json("build_monthly_report")["setup_suspects"] == []
    assert "runs in every execution" not in show("build_monthly_report").stdout


def test_sort_self_ranks_by_innermost_time(kept: Kept) -> None:
    kept.keep_seed_profiles()

    functions = show_json("record_event", "--sort", "self")["functions"]

    assert [f["self"] for f in functions] == sorted((f["self"] for f in functions), reverse=True)
    assert functions[0]["function"] == "Mapper._post_configure_properties"


def test_limit_keeps_the_top_functions(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert len(show_json("record_event", "--limit", "2")["functions"]) == 2


def test_callers_says_who_calls_a_function_and_for_how_much_of_it(kept: Kept) -> None:
    kept.keep_seed_profiles()

    data = show_json("record_event", "--callers", "configure_mappers")

    callers = data["callers"]
    assert (callers["function"], callers["total"]) == ("configure_mappers", pytest.approx(0.75))
    assert [(c["function"], c["share_of_function"]) for c in callers["callers"]] == [("setup_models", 1.0)]
    table = show("record_event", "--callers", CONFIGURE_MAPPERS).stdout
    assert "callers of configure_mappers" in table and "app/models.py:5" in table


def test_callers_of_an_ambiguous_name_lists_the_matches(kept: Kept) -> None:
    a, b = frame("parse", "app/a.py", 1), frame("parse", "app/b.py", 1)
    task = frame("handle", "app/tasks.py", 1)
    kept.keep("app.tasks.handle", tally_fields({(task, a): 10, (task, b): 10}, executions=1))

    line = one_line_error(show("handle", "--callers", "parse"))

    assert "several functions" in line and a in line and b in line


def test_callers_of_a_function_not_in_the_profile_is_an_error(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert "no function 'nowhere'" in one_line_error(show("record_event", "--callers", "nowhere"))


def test_show_of_a_task_without_a_profile_names_the_profiled_ones(kept: Kept) -> None:
    kept.keep_seed_profiles()

    line = one_line_error(show("send_mail"))

    assert "no profile for 'send_mail'" in line
    assert "app.tasks.build_monthly_report, app.tasks.record_event" in line


def test_a_task_name_end_two_tasks_share_lists_both(kept: Kept) -> None:
    for task in ("billing.tasks.send", "mail.tasks.send"):
        kept.keep(task, tally_fields({(frame("send"),): 10}, executions=1))

    line = one_line_error(show("send"))

    assert "billing.tasks.send, mail.tasks.send" in line


def test_show_with_no_profile_at_all_says_how_to_turn_profiling_on(kept: Kept) -> None:
    line = one_line_error(show("send_mail"))

    assert "no task has a profile" in line
    assert "hurtle worker MODULE --profile all" in line and "@app.task(profile=True)" in line


def test_a_store_that_keeps_nothing_is_one_line(kept: Kept, monkeypatch: pytest.MonkeyPatch) -> None:
    def keeps_nothing(*_: Any) -> MemoryTallies:
        raise ConfigurationError("memory://x keeps no profiles: pass --profile-dir DIR")

    monkeypatch.setattr(tally_source, "open_tallies", keeps_nothing)

    assert "keeps no profiles" in one_line_error(show("record_event"))


def test_plumbing_frames_are_folded_unless_all_frames_is_asked(kept: Kept) -> None:
    task = frame("handle", "app/tasks.py", 1)
    stack = (task, hurtle_frame("Executor.call"), SETUP_MODELS)
    kept.keep("app.tasks.handle", tally_fields({stack: 10}, executions=1))

    def names(*args: str) -> set[str]:
        return {f["function"] for f in show_json("handle", *args)["functions"]}

    assert names() == {"handle", "setup_models"}
    assert names("--all-frames") == {"handle", "Executor.call", "setup_models"}


def test_a_leaking_task_is_shown_as_growing(kept: Kept) -> None:
    task = frame("remember", "app/tasks.py", 1)
    # 100 executions, each keeping 256 KiB more alive.
    kept.keep("app.tasks.remember", tally_fields({(task,): 1000}, executions=100, rss_growth=100 * 2**18))

    assert show_json("remember")["memory"]["growing"] is True
    assert "growing" in show("remember").stdout


def test_memory_lists_allocation_sites_or_says_how_to_record_them(kept: Kept) -> None:
    task = frame("remember", "app/tasks.py", 1)
    held = {"app/tasks.py:9": 5 * 2**20}
    kept.keep("app.tasks.remember", tally_fields({(task,): 10}, executions=20, memory=held))
    kept.keep("app.tasks.plain", tally_fields({(frame("plain"),): 10}, executions=20))

    assert "app/tasks.py:9" in show("remember", "--memory").stdout
    assert "--profile-memory" in show("plain", "--memory").stdout
    assert show_json("remember")["memory"]["sites"][0]["bytes"] == 5 * 2**20


@pytest.mark.parametrize("command", ["show", "list", "reset"])
def test_each_reading_command_is_reached_through_the_profile_group(command: str) -> None:
    result = hurtle("profile", command, "--help")

    assert result.exit_code == 0 and "--profile-dir" in result.stdout


def test_list_shows_every_profiled_task(kept: Kept) -> None:
    kept.keep_seed_profiles()

    table = hurtle("profile", "list", "-A", APP_MODULE)
    rows = json.loads(hurtle("profile", "list", "-A", APP_MODULE, "--json").stdout)

    assert table.exit_code == 0 and "app.tasks.record_event" in table.stdout
    assert [(r["task"], r["executions"], r["wall_ms_per_execution"]) for r in rows] == [
        ("app.tasks.build_monthly_report", N, 25.0), ("app.tasks.record_event", N, 25.0),
    ]


def test_list_with_nothing_profiled_says_how_to_turn_it_on(kept: Kept) -> None:
    result = hurtle("profile", "list", "-A", APP_MODULE)

    assert result.exit_code == 0 and "--profile all" in result.stdout


def reset(*args: str) -> Result:
    return hurtle("profile", "reset", *args, "-A", APP_MODULE)


def test_reset_deletes_the_named_tasks_profiles_only(kept: Kept) -> None:
    kept.keep_seed_profiles()

    result = reset("record_event")

    assert result.exit_code == 0 and "deleted 1 profile(s)" in result.stdout
    assert kept.tasks() == ["app.tasks.build_monthly_report"]


def test_reset_all_deletes_every_profile(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert reset("--all").exit_code == 0

    assert kept.tasks() == []


@pytest.mark.parametrize("args", [(), ("record_event", "--all")])
def test_reset_needs_tasks_or_all_but_not_both(kept: Kept, args: Sequence[str]) -> None:
    kept.keep_seed_profiles()

    assert reset(*args).exit_code == 2
    assert len(kept.tasks()) == 2


def test_reset_of_an_unknown_task_deletes_nothing(kept: Kept) -> None:
    kept.keep_seed_profiles()

    assert "no profile for 'send_mail'" in one_line_error(reset("record_event", "send_mail"))
    assert len(kept.tasks()) == 2
