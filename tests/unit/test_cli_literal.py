"""What the inspection commands print of a broker's data: the data, as it is."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from hurtle.cli.literal import literal, when


def printed(value: object, **options: bool) -> str:
    console = Console(width=200, color_system=None, record=True)
    console.print(literal(value, **options))
    return console.export_text().rstrip("\n")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("[bold]x[/] [/etc/app.conf]", "[bold]x[/] [/etc/app.conf]"),
        ("\x1b[2Jclear\rover", "\\x1b[2Jclear\\x0dover"),
        ("two\nlines", "two\\x0alines"),
        ("right-to-left \u202eoverride", "right-to-left \\u202eoverride"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        (b"\xff\xfe bytes", "\\xff\\xfe bytes"),
        (None, ""),
        (12, "12"),
    ],
)
def test_broker_data_prints_as_it_is(value: object, shown: str) -> None:
    assert printed(value) == shown


def test_a_full_reason_keeps_its_lines() -> None:
    assert printed("Traceback\n  line", lines=True) == "Traceback\n  line"


@pytest.mark.parametrize("value", ["yesterday", math.nan, 1e300, -1e20, None, b"\xff", [1]])
def test_a_failed_at_that_is_no_time_is_shown_as_it_is(value: object) -> None:
    assert when(value).plain == literal(value).plain


def test_a_failed_at_that_is_a_time_is_shown_as_one() -> None:
    assert when(0.0).plain[:4] in ("1970", "1969") and when("1700000000").plain.startswith("2023-11-1")
