"""Keys and records of a Redis broker that another program wrote: never fatal.

Redis keeps whatever anyone writes at hurtle's keys. hurtle's scripts dead-letter
a record they cannot read (``housekeep.lua``) and treat a key of the wrong type
as a step to skip, and this module decides what the client does about the rest:

- a queue whose stream key holds another type cannot be read, and one
  ``XREADGROUP`` over several streams fails whole: that queue is skipped, said
  so in the log, and looked at again every ``RECHECK_EVERY`` seconds, while the
  other queues flow;
- a problem a script reports (a delayed set of the wrong type) is logged at most
  once per ``RECHECK_EVERY`` seconds, not at every fetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.url import Keys

log = logging.getLogger("hurtle.redis")

RECHECK_EVERY = 60.0  # seconds: a skipped queue is tried again, a problem logged again, after this

class Reports:
    """Log each distinct problem once per ``RECHECK_EVERY`` seconds."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}  # problem: monotonic time it was logged

    def error(self, problem: str) -> None:
        now = time.monotonic()
        if now - self._last.get(problem, -RECHECK_EVERY) >= RECHECK_EVERY:
            self._last[problem] = now
            log.error("%s", problem)


class SkippedQueues:
    """Queues whose stream key holds another type: skipped until their next look."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}  # queue: monotonic time of the next look

    def usable(self, queues: Sequence[str]) -> list[str]:
        """``queues`` without those skipped now."""
        if not self._until:
            return list(queues)
        now = time.monotonic()
        return [q for q in queues if self._until.get(q, 0.0) <= now]

    async def find(self, conn: RedisConn, keys: Keys, queues: Sequence[str]) -> bool:
        """After a WRONGTYPE: look at each queue's stream key and skip those that hold
        another type, saying so; False when none does (the error is another's)."""
        found = False
        for queue in queues:
            stream = keys.stream(queue)
            reply = await conn.client.type(stream)
            kind = reply.decode() if isinstance(reply, bytes) else reply
            if kind not in ("stream", "none"):
                found = True
                self._until[queue] = time.monotonic() + RECHECK_EVERY
                log.error(
                    "queue %r skipped: its key %s holds a %s, not a stream (written by another"
                    " program?); looking again in %.0fs", queue, stream, kind, RECHECK_EVERY,
                )
            else:
                self._until.pop(queue, None)
        return found
