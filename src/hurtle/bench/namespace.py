"""A namespace of its own for each bench run on a shared broker, deleted after the run.

`hurtle bench --broker redis://...` or `amqp://...` often points at the Redis or
RabbitMQ a team already runs. A run must not leave its queues, tallies and task
history where `hurtle status`, the dashboard and the team's workers look: each
run gets a prefix of its own (the URL's prefix, or hurtle's, plus
``-bench-<token>``), and everything under it is deleted when the run ends, however
it ends. A run also never finds an earlier run's leftovers in its queue.

SQLite runs already use a fresh file in a temp dir; ``memory://`` keeps nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from hurtle.brokers import from_url
from hurtle.brokers.url_options import query_options, rebuild

if TYPE_CHECKING:
    from aiormq.abc import AbstractChannel

    from hurtle.brokers.amqp.link import Names

log = logging.getLogger("hurtle.bench")

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
AMQP_SCHEMES = ("amqp", "amqps")
DEFAULT_PREFIX = "hurtle"  # both brokers' default prefix (their modules import redis and aiormq)
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})


@contextmanager
def run_namespace(url: str) -> Iterator[str]:
    """``url`` with a prefix of this run's own; every key, queue and exchange under it
    is deleted on the way out. Other schemes come back as they are."""
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES + AMQP_SCHEMES:
        yield url
        return
    from_url(url)  # a bad URL is said in the user's own terms, and leaves nothing to delete
    own = with_prefix(url, f"-bench-{secrets.token_hex(4)}")
    from_url(own)
    try:
        yield own
    finally:
        try:
            asyncio.run(_drop_redis(own) if scheme in REDIS_SCHEMES else _drop_amqp(own))
        except Exception as exc:  # the run's result stands; say what may be left
            log.warning("could not delete the bench run's namespace (%s): %s", prefix_of(own), exc)


def with_prefix(url: str, suffix: str) -> str:
    """``url`` whose ``prefix`` option (or the default prefix) has ``suffix`` added."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in query_options(parts) if k != "prefix"]
    return rebuild(parts, urlencode([*kept, ("prefix", prefix_of(url) + suffix)]))


def prefix_of(url: str) -> str:
    return dict(query_options(urlsplit(url))).get("prefix", DEFAULT_PREFIX)


async def _drop_redis(url: str) -> int:
    """Delete every key under the URL's prefix; how many there were."""
    from redis.asyncio import Redis, RedisCluster

    from hurtle.brokers.redis.url import RedisURL

    parsed = RedisURL.parse(url)
    client_url = parsed.client_url.reveal()
    client = RedisCluster.from_url(client_url) if parsed.cluster else Redis.from_url(client_url)
    pattern = parsed.keys.prefix.translate(_GLOB) + ":*"
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += await _unlink(client, batch, parsed.cluster)
                batch = []
        if batch:
            deleted += await _unlink(client, batch, parsed.cluster)
    finally:
        await client.aclose()
    return deleted


async def _unlink(client: Any, keys: list[bytes], cluster: bool) -> int:
    """UNLINK ``keys``; one at a time on a cluster, where they live on different slots."""
    if cluster:
        return sum([int(await client.unlink(key)) for key in keys])
    return int(await client.unlink(*keys))


async def _drop_amqp(url: str) -> int:
    """Delete every queue and exchange hurtle makes under the URL's prefix; how many
    queues were catalogued."""
    import aiormq

    from hurtle.brokers.amqp.link import AMQPURL

    parsed = AMQPURL.parse(url)
    connection = await aiormq.connect(parsed.client_url.reveal())
    try:
        return await delete_amqp_names(await connection.channel(), parsed.names)
    finally:
        await connection.close()


async def delete_amqp_names(channel: AbstractChannel, names: Names) -> int:
    """Delete what a broker with ``names`` makes: each catalogued queue's work, dead and
    delay queues, then the exchanges and the catalogue itself. How many queues were
    catalogued. (The catalogue is declared first, as the broker declares it, so a prefix
    that made no queue reads none.)"""
    from pamqp import commands as spec

    from hurtle.brokers.amqp.topology import LEVELS

    await channel.queue_declare(names.catalogue, durable=True)
    queues: set[str] = set()
    while isinstance((message := await channel.basic_get(names.catalogue, no_ack=True)).delivery,
                     spec.Basic.GetOk):
        queues.add(message.body.decode(errors="replace"))
    for queue in queues:
        for name in (names.work(queue), names.dead(queue), *(names.delay(L, queue) for L in range(LEVELS))):
            await channel.queue_delete(name)
    for level in reversed(range(LEVELS)):  # a level's exchange is bound to the one below
        await channel.exchange_delete(names.delay_exchange(level))
    await channel.exchange_delete(names.dead_exchange)
    await channel.queue_delete(names.catalogue)
    return len(queues)
