"""Tallies in a directory of files: for a broker that keeps none (RabbitMQ), given
``--profile-dir DIR``. Works on a filesystem that several machines share.

Each process appends its increments, one JSON line each, to a file of its own,
``<host>-<pid>.jsonl``: a file has one writer, so no process ever waits for a
lock held by another, and a line is written whole in one ``write``. A reader
reads every file and replays each key's lines in time order:

- an add line ``{"k": key, "t": written at, "e": expires at, "c": counts, "h": highest}``
  adds its counts and raises its highest fields. The key lives until the latest
  ``e`` of its lines (with one ttl for every add, as profiles use, that is "ttl
  after the last add", as on the other stores). A line written once the key had
  expired starts it again from nothing.
- a delete line ``{"k": key, "t": deleted at, "d": 1}`` (a tombstone) hides every
  line of that key up to its time, in every file.

Why tombstones rather than rewriting other processes' files: a file's owner may
be appending at the very moment, and a rewrite by anyone else (read, filter,
replace) would drop the line it appended meanwhile; no file is ever written by a
process other than its owner. A delete is then ordered against concurrent adds by
the lines' times: an add stamped before the delete is hidden, one stamped after
it counts. So hosts' clocks must agree to within the time between a delete and
the adds it should not hide (NTP's milliseconds do).

A file stays bounded: past ``COMPACT_BYTES``, and at ``close``, its owner folds
it to what still counts (one line per live key, and the tombstones still hiding
a line somewhere), written beside it and renamed over it, so a reader sees the
old file or the new one whole. Files of processes that exited stay, one folded
line per key: their figures count as long as their keys live, as a hash's
fields do on Redis. A file folded to nothing is removed.

A line being appended when a reader reads may be cut short: a line that does not
parse is skipped (it is whole at the next read).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hurtle.tallies import TallyStore

COMPACT_BYTES = 4 * 1024 * 1024  # a process's file is folded when it grows past this
SUFFIX = ".jsonl"

# One lock per file in this process: two stores on one directory write one file, and a
# fold must not drop a line appended meanwhile. By path, and the path holds the pid, so
# a child after fork never inherits a lock held by a thread that did not come along.
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(path, threading.Lock())


@dataclass
class Line:
    """One line of a file: an add, or (``expires_at`` None) a tombstone."""

    key: str
    written_at: float
    expires_at: float | None
    counts: dict[str, int] = field(default_factory=dict)
    highest: dict[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        # "k" first: a reader of one key skips other keys' lines before parsing them.
        body: dict[str, object] = {"k": self.key, "t": self.written_at}
        if self.expires_at is None:
            body["d"] = 1
        else:
            body.update(e=self.expires_at, c=self.counts, h=self.highest)
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> Line | None:
        """The line, or None for one cut short or not hurtle's."""
        try:
            body = json.loads(raw)
            key, written_at = body["k"], float(body["t"])
            if not isinstance(key, str) or not math.isfinite(written_at):
                return None
            if body.get("d"):
                return cls(key, written_at, None)
            counts = {str(name): int(value) for name, value in body["c"].items()}
            highest = {str(name): int(value) for name, value in body["h"].items()}
            return cls(key, written_at, float(body["e"]), counts, highest)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def key_marker(key: str) -> bytes:
    """How every line of ``key`` begins (``Line.encode``)."""
    return b'{"k":' + json.dumps(key).encode() + b","


@dataclass
class Replay:
    """A key's lines replayed in time order: its fields now, and where they began."""

    fields: dict[str, int] = field(default_factory=dict)
    expires_at: float = -math.inf
    #: When the run of adds that the fields sum began (after the last tombstone or
    #: expiry); None when the last line was a tombstone.
    since: float | None = None

    def live(self, now: float) -> bool:
        return self.expires_at > now


def replay(lines: Iterable[Line]) -> Replay:
    # At one time, adds before tombstones: a delete hides what was stamped with its time.
    ordered = sorted(lines, key=lambda line: (line.written_at, line.expires_at is None))
    state = Replay()
    for line in ordered:
        if line.expires_at is None:
            state = Replay()
            continue
        if line.written_at >= state.expires_at:  # expired (or never lived): from nothing
            state = Replay(since=line.written_at)
        _apply(state.fields, line.counts, line.highest)
        state.expires_at = max(state.expires_at, line.expires_at)
    return state


def _apply(fields: dict[str, int], counts: Mapping[str, int], highest: Mapping[str, int]) -> None:
    for name, value in counts.items():
        fields[name] = fields.get(name, 0) + value
    for name, value in highest.items():
        fields[name] = max(fields.get(name, value), value)


def fold(own: Sequence[Line], others: Sequence[Line], now: float) -> list[Line]:
    """What one file's lines of one key (``own``) come to, given every other file's
    lines of it: one add line for what still counts, and the last tombstone while a
    line it hides remains anywhere."""
    state = replay([*own, *others])
    adds = [
        line for line in own
        if line.expires_at is not None and state.live(now)
        and state.since is not None and line.written_at >= state.since
    ]
    kept: list[Line] = []
    if adds:
        # Stamped with the first add's time and the latest expiry: in the replay the
        # folded line spans every line it replaces, so no run of adds is cut in two.
        merged = Line(adds[0].key, min(a.written_at for a in adds), max(a.expires_at or 0.0 for a in adds))
        for line in adds:
            for name, value in line.counts.items():
                merged.counts[name] = merged.counts.get(name, 0) + value
            for name, value in line.highest.items():
                merged.highest[name] = max(merged.highest.get(name, value), value)
        kept.append(merged)
    tombstones = [line for line in own if line.expires_at is None]
    if tombstones:
        last = max(tombstones, key=lambda line: line.written_at)
        remaining = [*others, *kept]
        if any(line.expires_at is not None and line.written_at <= last.written_at for line in remaining):
            kept.append(last)
    return kept


class DirectoryTallies(TallyStore):
    """Tallies as JSON lines in ``path``, one file per process (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, writer: str | None = None) -> None:
        """``writer`` names this store's file instead of ``<host>-<pid>``: for a test that
        plays several processes in one. Two stores of one process must not both write
        a file under a name given here after a fork."""
        self.path = Path(path)
        self._writer = writer
        self._host = socket.gethostname().replace(os.sep, "_") or "host"

    @property
    def own_file(self) -> Path:
        """This store's file: by pid, so a child after fork writes a file of its own."""
        name = self._writer if self._writer is not None else f"{self._host}-{os.getpid()}"
        return self.path / f"{name}{SUFFIX}"

    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        if not counts and not highest:
            return
        now = time.time()
        line = Line(
            key, now, now + ttl,
            {name: int(value) for name, value in counts.items()},
            {name: int(value) for name, value in (highest or {}).items()},
        )
        await asyncio.to_thread(self._append, [line])

    async def read(self, key: str) -> dict[str, int]:
        return await asyncio.to_thread(self._read, key)

    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        if not keys:
            return []
        return await asyncio.to_thread(self._read_many, list(keys))

    async def keys(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._keys, prefix)

    async def delete(self, keys: Sequence[str]) -> None:
        now = time.time()
        if keys:
            await asyncio.to_thread(self._append, [Line(key, now, None) for key in dict.fromkeys(keys)])

    async def close(self) -> None:
        """Fold this process's file, so what it leaves behind is small."""
        if self.own_file.exists():
            await asyncio.to_thread(self._compact, self.own_file)

    # -- on a thread ---------------------------------------------------------

    def _append(self, lines: Sequence[Line]) -> None:
        own = self.own_file
        data = b"".join(line.encode() for line in lines)
        with _lock_for(own):
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(own, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a write cut short by a crash: never glue a line to it
                size += len(data)
                view = memoryview(data)
                while view:  # one write, unless the filesystem takes less
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            if size > COMPACT_BYTES:
                self._compact_locked(own)

    def _compact(self, own: Path) -> None:
        with _lock_for(own):
            self._compact_locked(own)

    def _compact_locked(self, own: Path) -> None:
        by_file = {path: list(_lines(path)) for path in self._files()}
        mine = by_file.pop(own, [])
        others: dict[str, list[Line]] = {}
        for lines in by_file.values():
            for line in lines:
                others.setdefault(line.key, []).append(line)
        by_key: dict[str, list[Line]] = {}
        for line in mine:
            by_key.setdefault(line.key, []).append(line)
        now = time.time()
        kept = [line for key, lines in by_key.items() for line in fold(lines, others.get(key, []), now)]
        if not kept:  # only its owner writes it, and holds the lock: nothing to lose
            own.unlink(missing_ok=True)
            return
        staging = own.with_name(own.name + ".folding")
        staging.write_bytes(b"".join(line.encode() for line in kept))
        os.replace(staging, own)

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.path.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def _read(self, key: str) -> dict[str, int]:
        marker = key_marker(key)
        lines = [line for path in self._files() for line in _lines(path, marker) if line.key == key]
        state = replay(lines)
        return dict(state.fields) if state.live(time.time()) else {}

    def _read_many(self, keys: list[str]) -> list[dict[str, int]]:
        # One pass over the files for every key, where a read per key would read them all each time.
        wanted = set(keys)
        by_key: dict[str, list[Line]] = {}
        for path in self._files():
            for line in _lines(path):
                if line.key in wanted:
                    by_key.setdefault(line.key, []).append(line)
        now = time.time()
        states = {key: replay(lines) for key, lines in by_key.items()}
        return [dict(states[key].fields) if key in states and states[key].live(now) else {} for key in keys]

    def _keys(self, prefix: str) -> list[str]:
        by_key: dict[str, list[Line]] = {}
        for path in self._files():
            for line in _lines(path):
                if line.key.startswith(prefix):
                    by_key.setdefault(line.key, []).append(line)
        now = time.time()
        return sorted(key for key, lines in by_key.items() if replay(lines).live(now))


def _lines(path: Path, marker: bytes = b"") -> Iterator[Line]:
    """The lines of one file that parse (and begin with ``marker``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # renamed over by its owner's fold, or removed
        return
    for text in raw.split(b"\n"):
        if text.startswith(marker):
            line = Line.decode(text)
            if line is not None:
                yield line
