"""Deploy markers: "v1.2 went out at 14:02", kept beside the task history.

A marker is a tally (``hurtle.tallies``) of its own, ``deploy:<ms>:<token>``, whose
one field is the marker's text and holds its time in milliseconds; it lives as
long as the history does, so every chart of the history can show the deploys
within it. ``hurtle deploy-mark TEXT`` and ``App.mark_deploy`` write one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from hurtle.tallies import TallyStore

PREFIX = "deploy:"
MAX_TEXT = 200  # characters of a marker's text: a version or a short note


@dataclass(frozen=True)
class DeployMark:
    text: str
    at: float  # Unix time, the marker's writer's clock


def check_text(text: str) -> str:
    """``text`` as a marker's text, or ``ValueError`` saying what is wrong with it."""
    text = text.strip()
    if not text:
        raise ValueError("a deploy marker needs a text, such as a version")
    if len(text) > MAX_TEXT:
        raise ValueError(f"a deploy marker's text is {MAX_TEXT} characters at most, not {len(text)}")
    return text


async def mark_deploy(store: TallyStore, text: str, ttl: float, now: float | None = None) -> DeployMark:
    """Write a marker of ``text`` at ``now``, kept ``ttl`` seconds (the history's lifetime)."""
    mark = DeployMark(check_text(text), time.time() if now is None else now)
    at_ms = round(mark.at * 1000)
    await store.add(f"{PREFIX}{at_ms:015d}:{secrets.token_hex(4)}", {mark.text: at_ms}, ttl)
    return mark


async def read_deploys(store: TallyStore, since: float | None = None) -> list[DeployMark]:
    """The markers kept (those at ``since`` or later), oldest first."""
    keys = await store.keys(PREFIX)
    marks = [
        DeployMark(text, at_ms / 1000)
        for fields in await store.read_many(keys)
        for text, at_ms in fields.items()
    ]
    return sorted((m for m in marks if since is None or m.at >= since), key=lambda m: (m.at, m.text))
