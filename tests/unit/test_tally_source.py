"""Where an app's tallies go (``open_tallies``): the directory asked for, else the
broker's own store, else the result store's, else a one-line error saying what to pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from hurtle.brokers.sqlite.tallies import SQLiteTallies
from hurtle.errors import ConfigurationError
from hurtle.tallies import MemoryTallies
from hurtle.tally_dir import DirectoryTallies
from hurtle.tally_source import BrokerTallies, open_tallies

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _needs_amqp_client() -> None:
    pytest.importorskip("aiormq")  # the amqp extra installs nothing on Python 3.10


async def test_a_directory_given_wins_over_a_broker_that_keeps_tallies(tmp_path: Path) -> None:
    store = open_tallies(f"sqlite:///{tmp_path}/b.db", None, tmp_path / "profiles")

    assert isinstance(store, DirectoryTallies)
    assert store.path == tmp_path / "profiles"


async def test_the_brokers_own_store_comes_next_and_closing_it_closes_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_tallies(f"sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/r.db", None)
    assert isinstance(store, BrokerTallies)
    assert isinstance(store.store, SQLiteTallies)
    assert store.broker.url.reveal() == f"sqlite:///{tmp_path}/b.db"
    closed = []
    close = store.broker.close

    async def recording_close() -> None:
        closed.append(True)
        await close()

    monkeypatch.setattr(store.broker, "close", recording_close)
    await store.add("k", {"n": 1}, 60.0)

    await store.close()

    assert closed == [True]


async def test_a_broker_that_keeps_none_uses_the_result_stores_broker() -> None:
    _needs_amqp_client()

    store = open_tallies(AMQP, "memory://tally-source", None)

    assert isinstance(store, BrokerTallies)
    assert isinstance(store.store, MemoryTallies)
    await store.close()


def test_a_broker_that_keeps_none_without_a_result_store_or_directory_says_what_to_pass() -> None:
    _needs_amqp_client()

    with pytest.raises(ConfigurationError) as raised:
        open_tallies(AMQP, None, None)  # no connection is made: no server needed

    message = str(raised.value)
    assert message.startswith("amqp keeps no profiles: ")
    assert "--profile-dir DIR" in message
    assert "results=" in message
    assert "\n" not in message
