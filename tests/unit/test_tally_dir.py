"""The directory store's files (``hurtle.tally_dir``): one per process, appended to,
folded by their owner, read whole by anyone. What every tally store does is in
``tests/contract/test_tallies.py``; this is what only files do."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hurtle import tally_dir
from hurtle.tally_dir import DirectoryTallies

LONG_TTL = 3600.0


def _lines(store: DirectoryTallies) -> list[bytes]:
    return store.own_file.read_bytes().splitlines() if store.own_file.exists() else []


def test_a_process_writes_a_file_named_by_its_host_and_pid(tmp_path: Path) -> None:
    store = DirectoryTallies(tmp_path)

    assert store.own_file == tmp_path / f"{socket.gethostname()}-{os.getpid()}.jsonl"


async def test_a_file_past_its_size_limit_is_folded_to_one_line_per_key_keeping_the_sums(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tally_dir, "COMPACT_BYTES", 2_000)
    writer, other = DirectoryTallies(tmp_path, writer="a"), DirectoryTallies(tmp_path, writer="b")
    await other.add("k", {"n": 1000}, LONG_TTL)

    for i in range(200):
        await writer.add("k", {"n": 1, "wall": i}, LONG_TTL, highest={"peak": i % 50})
        await writer.add("j", {"n": 2}, LONG_TTL)

    assert len(_lines(writer)) < 40  # 400 adds, folded as the file grew
    assert await other.read("k") == {"n": 1200, "wall": sum(range(200)), "peak": 49}
    assert await other.read("j") == {"n": 400}


async def test_closing_folds_the_file_and_drops_what_expired(tmp_path: Path) -> None:
    store = DirectoryTallies(tmp_path, writer="a")
    await store.add("brief", {"n": 1}, 0.0)  # expired as soon as written
    for _ in range(3):
        await store.add("kept", {"n": 2}, LONG_TTL)

    await store.close()

    assert len(_lines(store)) == 1
    assert await store.read("kept") == {"n": 6}


async def test_a_tombstone_is_kept_while_a_line_it_hides_remains_in_another_file(tmp_path: Path) -> None:
    deleter, adder = DirectoryTallies(tmp_path, writer="a"), DirectoryTallies(tmp_path, writer="b")
    await adder.add("k", {"n": 5}, LONG_TTL)
    await deleter.delete(["k"])

    await deleter.close()  # the adder's line is still in its file: the tombstone stays
    assert await adder.read("k") == {}
    await adder.close()  # the adder's fold drops its hidden line, and its empty file ...
    assert not adder.own_file.exists()
    await deleter.close()  # ... and then nothing needs the tombstone

    assert not deleter.own_file.exists()
    assert await adder.read("k") == {}


async def test_folding_keeps_adds_made_after_another_processs_delete_apart_from_those_before(
    tmp_path: Path,
) -> None:
    deleter, adder = DirectoryTallies(tmp_path, writer="a"), DirectoryTallies(tmp_path, writer="b")
    await adder.add("k", {"n": 5}, LONG_TTL)
    await deleter.delete(["k"])
    await adder.add("k", {"n": 1}, LONG_TTL)

    await adder.close()

    assert len(_lines(adder)) == 1
    assert await deleter.read("k") == {"n": 1}


async def test_a_line_cut_short_is_skipped_and_the_next_append_starts_a_line_of_its_own(
    tmp_path: Path,
) -> None:
    store = DirectoryTallies(tmp_path, writer="a")
    await store.add("k", {"n": 1}, LONG_TTL)
    with store.own_file.open("ab") as file:
        file.write(b'{"k":"k","t":1,"e":')  # a process killed mid-write

    assert await store.read("k") == {"n": 1}
    await store.add("k", {"n": 2}, LONG_TTL)

    assert await store.read("k") == {"n": 3}


async def test_a_missing_directory_reads_as_no_tallies_and_is_made_by_the_first_add(tmp_path: Path) -> None:
    store = DirectoryTallies(tmp_path / "not" / "yet")

    assert await store.keys("") == []
    await store.add("k", {"n": 1}, LONG_TTL)

    assert await store.keys("") == ["k"]
