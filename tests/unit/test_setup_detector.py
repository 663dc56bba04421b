"""The repeated-setup detector: setup redone on every call is flagged; real work is not."""

from __future__ import annotations

import pytest

from hurtle.profiling.setup_detector import (
    ADVICE,
    MIN_EXECUTIONS,
    expected_coverage,
    looks_like_setup,
    setup_suspects,
    significant,
)

from .profiles import SITE, asyncio_frame, frame, hurtle_frame, profile_of
from .seed_profiles import (
    COMMIT,
    COMPUTE,
    CONFIGURE_MAPPERS,
    CONNECT,
    EXECUTE_COMMAND,
    FETCH,
    GET,
    GET_CONNECTION,
    ORM_PER_CALL,
    POOL_INIT,
    POOL_PER_CALL,
    POST_CONFIGURE,
    READ_RESPONSE,
    REAL_WORK,
    RECOMMEND,
    RECORD_EVENT,
    REPORT_TASK,
    SETUP_MODELS,
    UNDER_CONNECT,
    N,
    from_worker,
    redis_py,
)


def test_an_orm_configured_on_every_call_is_flagged_at_the_users_setup_call() -> None:
    (suspect,) = setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=N))

    assert suspect.label == SETUP_MODELS
    assert suspect.share == pytest.approx(0.75)
    assert suspect.message == (
        f"setup_models runs in every execution (75% of the task's time): {ADVICE}"
    )
    assert suspect.called_from == RECORD_EVENT


def test_configure_mappers_called_straight_from_the_task_is_flagged() -> None:
    stacks = {tuple(f for f in stack if f != SETUP_MODELS): us for stack, us in ORM_PER_CALL.items()}

    (suspect,) = setup_suspects(profile_of("tasks.record_event", stacks, executions=N))

    assert suspect.label == CONFIGURE_MAPPERS


def test_a_redis_client_built_per_call_is_flagged_at_the_connection_it_opens() -> None:
    (suspect,) = setup_suspects(profile_of("tasks.recommend", POOL_PER_CALL, executions=N))

    assert suspect.label == CONNECT
    assert suspect.share == pytest.approx(0.6)
    assert suspect.called_from == FETCH  # the user's line, not redis-py's get_connection


def test_a_redis_client_built_by_from_url_on_every_call_is_flagged() -> None:
    from_url = redis_py("Redis.from_url", "client", 130)
    stacks = {(RECOMMEND, from_url, POOL_INIT): 300_000, (RECOMMEND, FETCH, GET, READ_RESPONSE): 700_000}

    (suspect,) = setup_suspects(profile_of("tasks.recommend", stacks, executions=N))

    assert suspect.label == from_url


def test_a_task_whose_real_work_dominates_is_not_flagged() -> None:
    assert setup_suspects(profile_of("tasks.build_monthly_report", REAL_WORK, executions=N)) == []


def test_setup_seen_in_only_the_first_execution_is_a_cache_filled_once() -> None:
    load_config = frame("load_config", "app/settings.py", 3)
    stacks = {(REPORT_TASK, load_config): 400_000, (REPORT_TASK, COMPUTE): 600_000}

    profile = profile_of("tasks.build_monthly_report", stacks, executions=N, seen_in={load_config: 1})

    assert setup_suspects(profile) == []


def test_setup_in_only_half_the_executions_is_not_flagged() -> None:
    seen_in = {SETUP_MODELS: N // 2, CONFIGURE_MAPPERS: N // 2, POST_CONFIGURE: N // 2}

    assert setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=N, seen_in=seen_in)) == []


def test_setup_in_every_execution_that_costs_little_is_not_flagged() -> None:
    # A shared pool hands out a connection it already has: in every call, but cheap.
    stacks = {
        (RECOMMEND, FETCH, GET, EXECUTE_COMMAND, GET_CONNECTION): 50_000,
        (RECOMMEND, FETCH, GET): 950_000,
    }

    assert setup_suspects(profile_of("tasks.recommend", stacks, executions=N)) == []


def test_a_share_read_from_a_handful_of_samples_is_not_enough_to_flag() -> None:
    # A 1 ms task caught in 10 of 400 executions: a helper of its own that looks
    # like setup read 38% of the time, on 4 of them.
    ensure = frame("ensure_connection", "app/db.py", 12)
    stacks = {(RECOMMEND, GET, EXECUTE_COMMAND, ensure): 38_000, (RECOMMEND, GET, READ_RESPONSE): 62_000}
    seen_in = {RECOMMEND: 10, GET: 10, EXECUTE_COMMAND: 10, ensure: 4, READ_RESPONSE: 6}

    assert setup_suspects(profile_of("tasks.recommend", stacks, executions=400, seen_in=seen_in)) == []


def test_the_same_share_read_from_many_executions_is_flagged() -> None:
    ensure = frame("ensure_connection", "app/db.py", 12)
    stacks = {(RECOMMEND, GET, EXECUTE_COMMAND, ensure): 38_000, (RECOMMEND, GET, READ_RESPONSE): 62_000}
    seen_in = {RECOMMEND: 60, GET: 60, EXECUTE_COMMAND: 60, ensure: 24, READ_RESPONSE: 36}

    (suspect,) = setup_suspects(profile_of("tasks.recommend", stacks, executions=400, seen_in=seen_in))

    assert suspect.label == ensure


def test_significance_needs_the_share_clear_of_the_threshold_for_the_samples_taken() -> None:
    assert significant(0.38, 60) and not significant(0.38, 10)
    assert significant(0.75, MIN_EXECUTIONS)
    assert not significant(0.14, 10_000) and not significant(0.9, 0)


def test_too_few_executions_tell_nothing_about_every_execution() -> None:
    assert setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=3)) == []


def test_too_few_executions_caught_by_the_sampler_tell_nothing() -> None:
    seen_in = {RECORD_EVENT: 3, SETUP_MODELS: 3, CONFIGURE_MAPPERS: 3, POST_CONFIGURE: 3}

    assert setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=N, seen_in=seen_in)) == []


def test_a_short_task_the_sampler_catches_now_and_then_is_still_flagged() -> None:
    # A 1 ms task sampled every few ms: caught in 60% of its executions, its setup
    # (75% of its time) in 45%.
    seen_in = {RECORD_EVENT: 24, SETUP_MODELS: 18, CONFIGURE_MAPPERS: 18, POST_CONFIGURE: 17, COMMIT: 7}

    (suspect,) = setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=N, seen_in=seen_in))

    assert suspect.label == SETUP_MODELS


def test_a_cache_filled_once_per_process_in_a_short_task_is_not_flagged() -> None:
    seen_in = {RECORD_EVENT: 24, SETUP_MODELS: 2, CONFIGURE_MAPPERS: 2, POST_CONFIGURE: 2}

    assert setup_suspects(profile_of("tasks.record_event", ORM_PER_CALL, executions=N, seen_in=seen_in)) == []


def test_a_helper_shared_by_setup_and_real_work_is_not_named_for_the_setup() -> None:
    # redis-py runs both the connection's handshake and each command through its retry loop.
    retry = redis_py("Retry.call_with_retry", "retry", 60)
    send = redis_py("Connection.send_command", line=700)
    stacks = from_worker({
        (RECOMMEND, EXECUTE_COMMAND, retry, send): 500_000,
        (RECOMMEND, EXECUTE_COMMAND, GET_CONNECTION, CONNECT, retry, UNDER_CONNECT): 400_000,
        (RECOMMEND,): 100_000,
    })

    (suspect,) = setup_suspects(profile_of("tasks.recommend", stacks, executions=N))

    assert suspect.label == CONNECT


def test_a_well_sampled_function_is_expected_in_nearly_every_execution() -> None:
    assert expected_coverage(0.75, N, N) > 0.95
    assert expected_coverage(0.75, N // 2, N) < 0.5


def test_a_task_whose_own_name_says_setup_is_not_flagged_for_doing_its_job() -> None:
    init_tenant = frame("init_tenant", "app/tasks.py", 5)
    create_tables = frame("_create_tables", "app/tenants.py", 9)
    stacks = {(init_tenant, create_tables): 900_000, (init_tenant,): 100_000}

    assert setup_suspects(profile_of("tasks.init_tenant", stacks, executions=N)) == []


def test_plumbing_between_the_task_and_its_setup_does_not_hide_it() -> None:
    stacks = {
        (RECORD_EVENT, hurtle_frame("Executor.call"), SETUP_MODELS, asyncio_frame("run")): 800_000,
        (RECORD_EVENT,): 200_000,
    }

    (suspect,) = setup_suspects(profile_of("tasks.record_event", stacks, executions=N))

    assert suspect.label == SETUP_MODELS


def test_a_neutral_function_is_flagged_when_its_callers_look_like_setup() -> None:
    # Each execution takes one of two setup paths; only the function they share
    # runs in every execution.
    load_config = frame("load_config", "app/settings.py", 3)
    build_index = frame("build_index", "app/search.py", 8)
    compile_schema = frame("Schema.compile", f"{SITE}/jsonschema/validators.py", 400)
    stacks = {
        (RECORD_EVENT, load_config, compile_schema): 300_000,
        (RECORD_EVENT, build_index, compile_schema): 300_000,
        (RECORD_EVENT,): 400_000,
    }
    half = {load_config: N // 2, build_index: N // 2}
    profile = profile_of("tasks.record_event", stacks, executions=N, seen_in=half)

    (suspect,) = setup_suspects(profile)

    assert suspect.label == compile_schema


def test_a_library_s_check_on_every_call_named_like_setup_is_not_flagged() -> None:
    # redis-py's pool checks the (same, long-lived) connection it hands out on every command.
    ensure = redis_py("AbstractConnection.ensure_connection", line=4376)
    stacks = {
        (RECOMMEND, FETCH, GET, EXECUTE_COMMAND, GET_CONNECTION, ensure): 330_000,
        (RECOMMEND, FETCH, GET, EXECUTE_COMMAND, READ_RESPONSE): 670_000,
    }

    assert setup_suspects(profile_of("tasks.recommend", stacks, executions=N)) == []


def test_the_same_name_in_the_task_s_own_code_is_flagged() -> None:
    ensure = frame("ensure_connection", "app/db.py", 12)
    stacks = {(RECOMMEND, ensure): 330_000, (RECOMMEND, FETCH, GET, READ_RESPONSE): 670_000}

    (suspect,) = setup_suspects(profile_of("tasks.recommend", stacks, executions=N))

    assert suspect.label == ensure


@pytest.mark.parametrize("qualname", ["Connection.connect", "create_engine", "ConnectionPool.__init__"])
def test_a_library_s_setup_that_says_so_alone_still_counts(qualname: str) -> None:
    assert looks_like_setup(qualname, library=True)


@pytest.mark.parametrize("qualname", ["ConnectionPool.ensure_connection", "load_config", "make_session"])
def test_a_verb_that_needs_its_noun_does_not_count_in_a_library(qualname: str) -> None:
    assert looks_like_setup(qualname) and not looks_like_setup(qualname, library=True)


@pytest.mark.parametrize("qualname", [
    "configure_mappers", "setup_models", "set_up_db", "init_db", "initialize", "create_engine",
    "create_async_engine", "connect", "Connection.connect", "Connection._connect", "ConnectionPool.__init__",
    "Redis.__init__", "redis.client.Redis.from_url", "StrictRedis.__init__", "RecommendClient.__init__",
    "AsyncEngine.__init__", "sessionmaker.__init__", "import_module", "_find_and_load", "load_config",
    "warm_cache", "build_index", "loadModel", "make_session", "open_connection", "bootstrap",
])
def test_names_that_say_setup(qualname: str) -> None:
    assert looks_like_setup(qualname)


@pytest.mark.parametrize("qualname", [
    "compute_report", "_sum_rows", "dumps", "JSONEncoder.encode", "load_user", "loads",
    "Session.execute", "ConnectionPool.get_connection", "Report.__init__", "connection_count",
    "initial_state", "warning", "record_event", "Connection.read_response", "__init__",
])
def test_names_that_do_not(qualname: str) -> None:
    assert not looks_like_setup(qualname)
