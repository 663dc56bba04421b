"""Write records straight into a broker's store, as a foreign producer (or a bug,
or a person with a shell) could: bypassing hurtle's client and its checks."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis

from hurtle.brokers.redis.url import Keys
from hurtle.urls import SecretURL


class RawSQLite:
    """Plain ``sqlite3`` on a SQLite broker's database file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.text_factory = bytes  # read back exactly what is stored
            return conn.execute(sql, params).fetchall()

    def insert(self, body_sql: str, *, visible_at: Any = 0.0, queue: str = "default",
               params: tuple[Any, ...] = ()) -> None:
        """One message row whose body is the SQL expression ``body_sql`` (on ``params``)."""
        self.execute(
            "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
            f" VALUES (?, ?, {body_sql}, ?, 0)",
            (uuid.uuid4().hex, queue, *params, visible_at),
        )

    @contextmanager
    def failing_inserts(self, table: str) -> Iterator[None]:
        """Every insert into ``table`` fails while this lasts, as a full disk would
        make it fail half-way through a move."""
        self.execute(
            f"CREATE TRIGGER hurtle_test_fail BEFORE INSERT ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'the test makes this insert fail'); END"
        )
        try:
            yield
        finally:
            self.execute("DROP TRIGGER hurtle_test_fail")


class RawRedis:
    """redis-py on a Redis broker's keys (one server, or a Cluster), by its URL."""

    def __init__(self, url: str | SecretURL) -> None:
        parts = urlsplit(SecretURL(url).reveal())
        self.keys = Keys(dict(parse_qsl(parts.query)).get("prefix", "hurtle"))
        if parts.scheme.endswith("+cluster"):
            self.client: Any = redis.RedisCluster(host=parts.hostname or "", port=parts.port or 6379)
        else:
            self.client = redis.Redis.from_url(parts._replace(query="").geturl())

    def close(self) -> None:
        self.client.close()
