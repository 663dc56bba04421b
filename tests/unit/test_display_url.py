"""URLs as hurtle prints them: no password, and a SQLite path that says where it is."""

from __future__ import annotations

import os

import pytest

from hurtle.settings import display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("amqp://guest:guest@host:5672/vhost", "amqp://guest:***@host:5672/vhost"),
        ("redis://host:6379/0?password=s3cret&prefix=app", "redis://host:6379/0?password=***&prefix=app"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("sqlite:////srv/app/hurtle.db", "sqlite:////srv/app/hurtle.db"),
        ("memory://", "memory://"),
    ],
)
def test_a_printed_url_hides_its_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_a_printed_sqlite_url_has_an_absolute_path() -> None:
    assert display_url("sqlite:///data/hurtle.db?prefix=a") == f"sqlite:///{os.getcwd()}/data/hurtle.db?prefix=a"
