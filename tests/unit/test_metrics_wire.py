"""Reports on the pipe: framed, read whole or not at all, so the supervisor's totals
are exact whatever a worker process does mid-write."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from hurtle.observe.metrics.inbox import Inbox
from hurtle.observe.metrics.totals import Totals
from hurtle.observe.metrics.wire import (
    HEADER,
    MAX_FRAME,
    FrameReader,
    QueueCounts,
    Report,
    TaskCounts,
    encode_frame,
)
from hurtle.observe.task_figures import BOUNDS


def report(
    slot: int = 0, succeeded: int = 1, task: str = "tasks.add", queues: list[QueueCounts] | None = None
) -> Report:
    run = [0] * (len(BOUNDS) + 1)
    run[3] = succeeded
    outcomes = [succeeded, 0, 0, 0, 0]
    counts = TaskCounts(task, "default", outcomes, run, run, 0.01 * succeeded, 0.02 * succeeded)
    return Report(slot, [counts], 1, 100, 2, 8, 1000, queues)


def succeeded(totals: Totals, task: str = "tasks.add") -> int:
    return totals.tasks[task, "default"].outcomes[0]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(Totals())
    yield box
    box.close()


def test_a_report_read_byte_by_byte_comes_out_as_it_went_in() -> None:
    sent = [report(slot=1, queues=[QueueCounts("default", 3, 1, None, 2, None)]), report(succeeded=5)]
    stream = b"".join(encode_frame(r) for r in sent)
    reader = FrameReader("test")

    received = [r for byte in range(len(stream)) for r in reader.feed(stream[byte:byte + 1])]

    assert received == sent
    assert reader.finish() == 0, "nothing left over"


def test_a_frame_cut_short_by_a_dying_process_is_dropped_and_the_whole_ones_before_it_count(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    read_fd, write_fd = inbox.open()
    inbox.attach(read_fd, pid=4242, slot=0)
    second = encode_frame(report(succeeded=100))
    os.write(write_fd, encode_frame(report(succeeded=3)) + second[: len(second) // 2])
    os.close(write_fd)  # the process died mid-write

    with caplog.at_level(logging.WARNING, "hurtle.metrics"):
        inbox.drain(4242)

    assert succeeded(inbox.totals) == 3
    assert inbox.fds() == [], "the pipe is closed"
    assert "ended in the middle of a report" in caplog.text


def test_the_supervisor_reads_what_is_there_while_the_process_lives(inbox: Inbox) -> None:
    read_fd, write_fd = inbox.open()
    inbox.attach(read_fd, pid=4242, slot=0)
    try:
        os.write(write_fd, encode_frame(report(succeeded=2)) + encode_frame(report(succeeded=5))[:HEADER + 1])
        inbox.read([read_fd])
        assert succeeded(inbox.totals) == 2, "the whole frame, not the partial one"
        assert inbox.fds() == [read_fd], "still open: the process may write the rest"
    finally:
        os.close(write_fd)


def test_a_pipe_its_process_closed_is_closed_when_read(inbox: Inbox) -> None:
    read_fd, write_fd = inbox.open()
    inbox.attach(read_fd, pid=4242, slot=0)
    os.write(write_fd, encode_frame(report(succeeded=4)))
    os.close(write_fd)

    inbox.read([read_fd])

    assert succeeded(inbox.totals) == 4
    assert inbox.fds() == [], "no end of file left for select to wake on, again and again"


def test_a_report_that_does_not_decode_is_skipped_and_the_next_one_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbage = b"\x93not a report"
    reader = FrameReader("test")

    with caplog.at_level(logging.ERROR, "hurtle.metrics"):
        stream = len(garbage).to_bytes(HEADER, "big") + garbage + encode_frame(report(succeeded=7))
        reports = reader.feed(stream)

    assert [r.tasks[0].outcomes[0] for r in reports] == [7]
    assert "does not decode" in caplog.text


def test_a_report_with_figures_out_of_range_is_refused() -> None:
    bad = report()
    # two outcomes, not four
    short = TaskCounts("t", "q", [1, 0], bad.tasks[0].run, bad.tasks[0].wait, 0.0, 0.0)
    negative = TaskCounts("t", "q", [-1, 0, 0, 0, 0], bad.tasks[0].run, bad.tasks[0].wait, 0.0, 0.0)
    reader = FrameReader("test")

    for counts in (short, negative):
        frame = encode_frame(Report(0, [counts], 0, 1, 0, 1, 0))
        assert reader.feed(frame) == []


def test_a_stream_out_of_step_is_not_read_any_further(caplog: pytest.LogCaptureFixture) -> None:
    reader = FrameReader("test")

    with caplog.at_level(logging.ERROR, "hurtle.metrics"):
        assert reader.feed((MAX_FRAME + 1).to_bytes(HEADER, "big") + b"x" * 10) == []

    assert reader.feed(encode_frame(report())) == []
    assert "out of step" in caplog.text
