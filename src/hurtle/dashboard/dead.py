"""The dead letters page: pages of the newest, a bounded search, and the actions.

No broker indexes its dead letters by anything but their order, so what one
request reads is bounded, whatever the broker holds:

- a page reads the newest ``(page + 1) * PAGE_SIZE`` dead letters
  (``Broker.dead_letters``: on Redis one ``XREVRANGE ... COUNT`` per queue, on
  SQLite one indexed query) and pages reach the newest ``MAX_DEPTH`` at most;
  narrowing to a queue reaches that queue's newest ``MAX_DEPTH``;
- a search reads the newest ``SEARCH_SCAN`` (of the queue, or of every queue)
  and matches the text in each one's task name, reason, dead-letter id and task
  id: an older match is not found until newer ones are requeued or purged;
- counts are the broker's own (``QueueStats.dead``: ``XLEN`` on Redis).

"Requeue all matching" moves what the search found (within its scan); with no
search and no queue it moves every dead letter, as ``hurtle dlq requeue --all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hurtle.brokers import DeadLetter
from hurtle.dashboard.hiding import args_json
from hurtle.dashboard.source import Source
from hurtle.dead_letters import envelope_of, requeue_and_forget
from hurtle.observe.task_report import seconds_or_none

PAGE_SIZE = 50
MAX_DEPTH = 10_000  # dead letters a page may reach back to, newest first
SEARCH_SCAN = 5_000  # dead letters a search reads, newest first
REASON_LINE = 200  # characters of a reason's first line in the list
REASON_WIDTH = 20_000  # characters of a whole reason (a traceback) when inspected
ARGS_WIDTH = 2_000


@dataclass(frozen=True)
class Query:
    """What the page asks for: a queue (None: every queue), a search text, a page."""

    queue: str | None
    text: str
    page: int

    @classmethod
    def of(cls, params: dict[str, str]) -> Query:
        page = params.get("page", "0")
        number = int(page) if page.isdigit() else 0
        return cls(params.get("queue") or None, params.get("q", "").strip(), number)


def matches(letter: DeadLetter, task: str | None, text: str) -> bool:
    """Whether the search text is in the letter's task name, reason, id or task id (any case)."""
    needle = text.casefold()
    fields = (task or "", letter.reason, letter.id, letter.message_id)
    return any(needle in field.casefold() for field in fields)


async def listing(source: Source, query: Query, hide_args: bool) -> dict[str, Any]:
    """One page of dead letters, newest first, and the counts to page through them."""
    stats = await source.broker.stats()
    queues = [row.name for row in stats if row.dead]
    total = sum(row.dead for row in stats if query.queue in (None, row.name))
    if query.text:
        found = await _search(source, query)
        start = query.page * PAGE_SIZE
        shown, more = found[start:start + PAGE_SIZE], len(found) > start + PAGE_SIZE
        scanned: int | None = SEARCH_SCAN
    else:
        page = min(query.page, MAX_DEPTH // PAGE_SIZE - 1)
        read = await source.broker.dead_letters(query.queue, (page + 1) * PAGE_SIZE + 1)
        shown = read[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        more = len(read) > (page + 1) * PAGE_SIZE and (page + 1) * PAGE_SIZE < MAX_DEPTH
        found, scanned = [], None
    return {
        "queues": queues, "total": total, "page": query.page, "page_size": PAGE_SIZE, "more": more,
        "matched": len(found) if query.text else None, "scanned": scanned, "max_depth": MAX_DEPTH,
        "letters": [_letter_json(letter, hide_args) for letter in shown],
    }


async def _search(source: Source, query: Query) -> list[DeadLetter]:
    letters = await source.broker.dead_letters(query.queue, SEARCH_SCAN)
    found = []
    for letter in letters:
        envelope = envelope_of(letter)
        if matches(letter, None if envelope is None else envelope.task, query.text):
            found.append(letter)
    return found


def _letter_json(letter: DeadLetter, hide_args: bool) -> dict[str, Any]:
    envelope = envelope_of(letter)
    reason = letter.reason
    first = next((line for line in reason.strip().splitlines() if line.strip()), "")
    return {
        "id": letter.id, "task_id": letter.message_id, "queue": letter.queue,
        "task": None if envelope is None else envelope.task,
        "failed_at": seconds_or_none(letter.failed_at),
        "summary": first[:REASON_LINE],
        "reason": reason[:REASON_WIDTH],
        "attempts": None if envelope is None else envelope.attempt + 1,
        "args": None if envelope is None else args_json(
            envelope.args, envelope.kwargs, hide_args, ARGS_WIDTH
        ),
    }


async def requeue(source: Source, ids: list[str]) -> dict[str, Any]:
    """Requeue the dead letters ``ids`` name, as ``hurtle dlq requeue IDS``."""
    requeued = await requeue_and_forget(source.connection, ids)
    return {"requeued": requeued.count, "unknown": list(requeued.unknown)}


async def requeue_matching(source: Source, query: Query) -> dict[str, Any]:
    """Requeue what the page's search finds (every dead letter, without a search or a queue)."""
    if not query.text and query.queue is None:
        return {"requeued": (await requeue_and_forget(source.connection, None)).count, "unknown": []}
    if query.text:
        ids = [letter.id for letter in await _search(source, query)]
    else:
        ids = [letter.id for letter in await source.broker.dead_letters(query.queue, SEARCH_SCAN)]
    return await requeue(source, ids) if ids else {"requeued": 0, "unknown": []}


async def purge(source: Source, queue: str | None) -> dict[str, Any]:
    """Delete the dead letters of ``queue`` (every queue: None), as ``hurtle dlq purge``."""
    return {"purged": await source.broker.purge_dead(queue)}
