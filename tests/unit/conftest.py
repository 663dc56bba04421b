"""Apps on a memory broker of their own, closed after the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import hurtle

from .support import MakeApp


@pytest.fixture
def make_app() -> Iterator[MakeApp]:
    """``make_app(**settings)``: an App on a fresh ``memory://`` store."""
    apps: list[hurtle.App] = []

    def make(**settings: Any) -> hurtle.App:
        app = hurtle.App(f"memory://unit-{uuid.uuid4().hex}", **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: MakeApp) -> hurtle.App:
    return make_app()
