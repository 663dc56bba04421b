"""What a broker declares it can do: each capability says what it means."""

from __future__ import annotations

import typing

import pytest

from hurtle.brokers import Broker

from .conftest import capability


def _capabilities() -> list[str]:
    hints = typing.get_type_hints(Broker)
    return [name for name, hint in hints.items() if hint == typing.ClassVar[bool]]


def test_every_capability_says_what_it_means_for_the_skip_reason() -> None:
    assert {"leases_expire", "counts_all_in_flight", "locates_messages"} <= set(_capabilities())
    for name in _capabilities():
        assert capability(name), name


def test_a_contract_test_that_needs_an_unknown_capability_fails_rather_than_skips() -> None:
    with pytest.raises(LookupError, match="no capability 'leases_expiry'"):
        capability("leases_expiry")
