"""A duty that keeps failing is logged once per period, and its mending once."""

from __future__ import annotations

import logging

import pytest

from hurtle.observe.trouble import Trouble


def test_failures_are_logged_once_per_period_and_the_mending_once(caplog: pytest.LogCaptureFixture) -> None:
    trouble = Trouble(logging.getLogger("hurtle.test"), every=3600)
    with caplog.at_level(logging.INFO, logger="hurtle.test"):
        trouble.ok("never broken: nothing to say")
        for _ in range(3):
            trouble.failed("write the record", OSError("disk full"), "; tasks run on")
        trouble.ok("written again")
        trouble.ok("written again")

    assert [r.getMessage() for r in caplog.records] == [
        "could not write the record (OSError: disk full); tasks run on",
        "written again",
    ]
    assert not trouble.failing


def test_a_failure_after_the_period_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    trouble = Trouble(logging.getLogger("hurtle.test"), every=0.0)
    with caplog.at_level(logging.WARNING, logger="hurtle.test"):
        trouble.failed("read", ValueError("bad"))
        trouble.failed("read", ValueError("bad"))
    assert len(caplog.records) == 2 and trouble.failing
