"""The profiles of the field stories: setup redone on every call, and real work."""

from __future__ import annotations

from .profiles import SITE, STDLIB, frame, hurtle_frame

N = 40  # executions profiled


def from_worker(stacks: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """Stacks as a worker keeps them: under its own frames, which views fold away."""
    return {(hurtle_frame("run_job"), *stack): us for stack, us in stacks.items()}


def sqlalchemy(qualname: str, line: int = 100) -> str:
    return frame(qualname, f"{SITE}/sqlalchemy/orm/mapper.py", line)


def redis_py(qualname: str, module: str = "connection", line: int = 100) -> str:
    return frame(qualname, f"{SITE}/redis/{module}.py", line)


# Seed story (a): an ORM configured on every call.
RECORD_EVENT = frame("record_event", "app/tasks.py", 20)
SETUP_MODELS = frame("setup_models", "app/models.py", 5)
CONFIGURE_MAPPERS = sqlalchemy("configure_mappers", 4100)
POST_CONFIGURE = sqlalchemy("Mapper._post_configure_properties", 2300)
COMMIT = frame("Session.commit", f"{SITE}/sqlalchemy/orm/session.py", 1900)
EXECUTE = frame("Cursor.execute", f"{STDLIB}/sqlite3/dbapi2.py", 10)

ORM_PER_CALL = from_worker({
    (RECORD_EVENT, SETUP_MODELS, CONFIGURE_MAPPERS, POST_CONFIGURE): 700_000,
    (RECORD_EVENT, SETUP_MODELS, CONFIGURE_MAPPERS): 50_000,
    (RECORD_EVENT, COMMIT, EXECUTE): 200_000,
    (RECORD_EVENT,): 50_000,
})

# Seed story (b): a client built per call opens a new connection per call.
RECOMMEND = frame("recommend", "app/tasks.py", 40)
CLIENT_INIT = frame("RecommendClient.__init__", "app/clients.py", 10)
POOL_INIT = redis_py("ConnectionPool.__init__", line=1000)
FETCH = frame("RecommendClient.fetch", "app/clients.py", 20)
GET = redis_py("Redis.get", "commands/core", 1800)
EXECUTE_COMMAND = redis_py("Redis.execute_command", "client", 540)
GET_CONNECTION = redis_py("ConnectionPool.get_connection", line=1100)
CONNECT = redis_py("Connection.connect", line=270)
UNDER_CONNECT = redis_py("Connection._connect", line=320)
CREATE_CONNECTION = frame("create_connection", f"{STDLIB}/socket.py", 830)
READ_RESPONSE = redis_py("Connection.read_response", line=500)

POOL_PER_CALL = from_worker({
    (RECOMMEND, CLIENT_INIT, POOL_INIT): 30_000,
    (RECOMMEND, FETCH, GET, EXECUTE_COMMAND, GET_CONNECTION, CONNECT, UNDER_CONNECT, CREATE_CONNECTION):
        600_000,
    (RECOMMEND, FETCH, GET, EXECUTE_COMMAND, READ_RESPONSE): 300_000,
    (RECOMMEND,): 70_000,
})

# Real work dominates: numbers crunched and a large document encoded.
REPORT_TASK = frame("build_monthly_report", "app/tasks.py", 60)
COMPUTE = frame("compute_report", "app/reports.py", 12)
SUM_ROWS = frame("_sum_rows", "app/reports.py", 40)
LOAD_ROWS = frame("load_rows", "app/reports.py", 80)
SESSION_EXECUTE = frame("Session.execute", f"{SITE}/sqlalchemy/orm/session.py", 2200)
DUMPS = frame("dumps", f"{STDLIB}/json/__init__.py", 183)
ENCODE = frame("JSONEncoder.encode", f"{STDLIB}/json/encoder.py", 183)

REAL_WORK = from_worker({
    (REPORT_TASK, COMPUTE, SUM_ROWS): 450_000,
    (REPORT_TASK, COMPUTE, LOAD_ROWS, SESSION_EXECUTE): 200_000,
    (REPORT_TASK, DUMPS, ENCODE): 300_000,
    (REPORT_TASK,): 50_000,
})
