"""The supervisor's ends of its children's report pipes: read in its loop, added to the totals.

One pipe per child, made before its fork. The supervisor selects on every read
end beside its wake-up pipe and reads what is there (``read``); when a child
has exited it reads what is left before closing its end (``drain``), so every
report a process wrote before it ended is counted, and a frame it did not
finish is dropped whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from hurtle.observe.metrics.totals import Totals
from hurtle.observe.metrics.wire import FrameReader

log = logging.getLogger("hurtle.metrics")

_READ_SIZE = 65536  # a Linux pipe's whole buffer, by default
_READS_PER_TURN = 16  # reads of one pipe per loop turn, at most: no child holds up the loop


@dataclass
class _Pipe:
    pid: int
    slot: int
    reader: FrameReader


class Inbox:
    """Every child's report pipe, by its read end."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals
        self._pipes: dict[int, _Pipe] = {}
        self._opened: list[int] = []  # read ends made for a fork not yet attached

    def open(self) -> tuple[int, int]:
        """A new pipe for the child about to be forked: (read end, write end)."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)  # the child writes without ever waiting on the supervisor
        self._opened.append(read_fd)
        return read_fd, write_fd

    def attach(self, read_fd: int, pid: int, slot: int) -> None:
        """After the fork: ``read_fd`` carries the reports of ``pid``, in ``slot``."""
        self._opened.remove(read_fd)
        self._pipes[read_fd] = _Pipe(pid, slot, FrameReader(f"worker {pid}"))

    def fds(self) -> list[int]:
        return list(self._pipes)

    def read(self, ready: Iterable[int]) -> None:
        """Read the pipes ``select`` found readable; close each one its child closed."""
        for fd in ready:
            pipe = self._pipes.get(fd)
            if pipe is not None and not self._read(fd, pipe, _READS_PER_TURN):
                self._close(fd, pipe)

    def drain(self, pid: int) -> None:
        """``pid`` has exited: count what it wrote, drop a frame it left unfinished, close its pipe."""
        for fd, pipe in list(self._pipes.items()):
            if pipe.pid == pid:
                self._read(fd, pipe, None)
                self._close(fd, pipe)

    def _read(self, fd: int, pipe: _Pipe, limit: int | None) -> bool:
        """Read what is there now (``limit`` reads at most); False once the writer has closed."""
        reads = 0
        while limit is None or reads < limit:
            reads += 1
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return True
            except OSError as exc:
                log.warning("metrics: could not read worker %d's reports (%s)", pipe.pid, exc)
                return False
            if not data:
                return False
            for report in pipe.reader.feed(data):
                self.totals.add(report)
        return True

    def _close(self, fd: int, pipe: _Pipe) -> None:
        dropped = pipe.reader.finish()
        if dropped:
            log.warning("metrics: worker %d ended in the middle of a report; its %d bytes are dropped",
                        pipe.pid, dropped)
        del self._pipes[fd]
        os.close(fd)

    def close_in_child(self) -> None:
        """In a child just forked: its copies of the other children's read ends, and its own."""
        for fd in [*self._pipes, *self._opened]:
            os.close(fd)
        self._pipes.clear()
        self._opened.clear()

    def close(self) -> None:
        for fd, pipe in list(self._pipes.items()):
            self._read(fd, pipe, None)
            self._close(fd, pipe)
        for fd in self._opened:
            os.close(fd)
        self._opened.clear()
