"""docs/protocol.md, run as written: a program without hurtle sends a task and
reads its result through the SQLite tables alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import Workers

pytestmark = pytest.mark.slow

PROTOCOL = Path(__file__).parents[2] / "docs" / "protocol.md"

FOREIGN_PRODUCER = textwrap.dedent(
    """
    import json, sqlite3, sys, time, uuid
    db, schema, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    conn = sqlite3.connect(db, timeout=30.0, isolation_level=None)
    if mode == "send":
        conn.executescript(schema)
        ids = []
        conn.execute("BEGIN IMMEDIATE")
        for x, y in [(2, 3), (40, 2)]:
            task_id = uuid.uuid4().hex
            now = time.time()
            body = json.dumps({"v": 1, "id": task_id, "task": "workerapp.add",
                               "args": [x, y], "enqueued_at": now})
            conn.execute(
                "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
                " VALUES (?, ?, ?, ?, ?)", (task_id, "default", body, now, now))
            ids.append(task_id)
        conn.execute("COMMIT")
        print(json.dumps(ids))
    else:
        results = {}
        for task_id in json.loads(sys.argv[4]):
            deadline = time.time() + 60
            while True:
                row = conn.execute(
                    "SELECT body FROM hurtle_results WHERE id = ? AND expires_at > ?",
                    (task_id, time.time())).fetchone()
                if row or time.time() > deadline:
                    break
                time.sleep(0.01)
            results[task_id] = json.loads(row[0]) if row else None
        print(json.dumps(results))
    """
)


def protocol_schema() -> str:
    """The CREATE statements of docs/protocol.md, exactly as a reader copies them."""
    blocks = re.findall(r"```sql\n(.*?)```", PROTOCOL.read_text(), re.S)
    return next(b for b in blocks if "CREATE TABLE" in b)


def run_foreign(*args: str) -> object:
    # -I -S: isolated, no site-packages: hurtle cannot be imported, only the stdlib.
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", FOREIGN_PRODUCER, *args],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(out.stdout)


def test_the_foreign_program_really_cannot_import_hurtle() -> None:
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import hurtle"], capture_output=True)
    assert probe.returncode != 0


def test_a_program_without_hurtle_sends_a_task_and_reads_its_result(
    tmp_path: Path, workers: Workers
) -> None:
    db = str(tmp_path / "broker.db")
    ids = run_foreign(db, protocol_schema(), "send")
    assert isinstance(ids, list) and len(ids) == 2
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    results = run_foreign(db, protocol_schema(), "read", json.dumps(ids))
    assert isinstance(results, dict)
    assert [results[i]["status"] for i in ids] == ["succeeded", "succeeded"]
    assert [results[i]["value"] for i in ids] == [5, 42]
