"""The floor: how fast a minimal Python loop moves messages through the same broker.

``hurtle bench noop`` measures hurtle; this measures what hurtle is compared
with (the issues' targets are a share of it): the least a Python client can do
to send, lease and acknowledge N messages, with the client hurtle itself uses.

Redis (redis-py asyncio, hiredis when installed): ``XADD`` pipelined in batches
of ``--send-batch``; then ``XREADGROUP COUNT --batch`` and, pipelined, ``XACK`` +
``XDEL`` of what was read (hurtle deletes acknowledged entries too), until the
stream is empty. RabbitMQ (aiormq, hurtle's transport): persistent messages
published with confirms, ``--send-batch`` in flight; then one consumer with
prefetch ``--batch``, acknowledged with ``multiple`` every half prefetch.

Each is run with one consumer process, then with two (``--processes 2`` in
``hurtle bench``): the messages are sent again, two processes consume them, and
the rate is N over the first read to the last ack across both. The bodies are
hurtle envelopes of a no-op task. Keys and queues get a unique name and are
deleted afterwards.

    python -m benchmarks.floor redis://127.0.0.1:6379/0 [-n 20000] [--batch 100]
    python -m benchmarks.floor amqp://guest:guest@127.0.0.1:5672/ [-n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hurtle.envelope import encode, make_envelope
from hurtle.urls import display_url

GROUP = "floor"
_IDLE = 0.3  # seconds without a message after which an AMQP consumer stops


@dataclass(frozen=True)
class Plan:
    url: str
    n: int
    batch: int  # messages read (Redis COUNT) or prefetched (AMQP) at a time
    send_batch: int  # messages per XADD pipeline, or publishes in flight
    name: str  # the stream key or queue name, unique per run


@dataclass(frozen=True)
class Span:
    """One consumer's work: how many, first read started, last ack sent (unix s)."""

    count: int
    first: float
    last: float


def _body() -> bytes:
    envelope = make_envelope("hurtle.bench.noop.noop", (), {}, queue="bench-noop")
    return encode(envelope)


def _run(coro: Awaitable[Any]) -> Any:
    try:
        import uvloop  # the worker runs on uvloop when installed; so does the floor

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


# -- Redis -------------------------------------------------------------------------


async def redis_send(plan: Plan) -> float:
    """XADD N entries in pipelined batches; the rate, entries per second."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(plan.url)
    body = _body()
    try:
        if not await client.exists(plan.name):
            await client.xgroup_create(plan.name, GROUP, id="0", mkstream=True)
        started = time.perf_counter()
        for start in range(0, plan.n, plan.send_batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(start, min(plan.n, start + plan.send_batch)):
                pipe.execute_command("XADD", plan.name, "*", "id", secrets.token_hex(16), "body", body)
            await pipe.execute()
        return plan.n / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def redis_consume(plan: Plan) -> Span:
    """XREADGROUP COUNT batch, then XACK + XDEL of the batch in one pipeline, until empty."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(plan.url)
    consumer = f"c{secrets.token_hex(4)}"
    count, first, last = 0, 0.0, 0.0
    try:
        first = time.time()
        while True:
            reply: Any = await client.xreadgroup(GROUP, consumer, {plan.name: ">"}, count=plan.batch)
            if not reply:
                break
            ids = [entry_id for _, entries in reply for entry_id, _ in entries]
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("XACK", plan.name, GROUP, *ids)
            pipe.execute_command("XDEL", plan.name, *ids)
            await pipe.execute()
            count += len(ids)
            last = time.time()
        return Span(count, first, last)
    finally:
        await client.aclose()


async def redis_cleanup(plan: Plan) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(plan.url)
    try:
        await client.delete(plan.name)
    finally:
        await client.aclose()


# -- RabbitMQ ----------------------------------------------------------------------


async def amqp_send(plan: Plan) -> float:
    """Publish N persistent messages with confirms, ``send_batch`` in flight; the rate."""
    import aiormq
    from pamqp import commands as spec

    conn = await aiormq.connect(plan.url)
    body = _body()
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.queue_declare(plan.name, durable=True)
        started = time.perf_counter()
        for start in range(0, plan.n, plan.send_batch):
            size = min(plan.n, start + plan.send_batch) - start
            await asyncio.gather(*(
                channel.basic_publish(
                    body, routing_key=plan.name,
                    properties=spec.Basic.Properties(
                        content_type="application/json", delivery_mode=2, message_id=secrets.token_hex(16)
                    ),
                )
                for _ in range(size)
            ))
        return plan.n / (time.perf_counter() - started)
    finally:
        await conn.close()


async def amqp_consume(plan: Plan) -> Span:
    """One consumer, prefetch ``batch``, ``multiple`` acks every half prefetch, until idle."""
    import aiormq
    from aiormq.abc import DeliveredMessage

    conn = await aiormq.connect(plan.url)
    every = max(1, plan.batch // 2)
    state = {"count": 0, "first": 0.0, "last": 0.0, "unacked": 0}
    arrived = asyncio.Event()
    try:
        channel = await conn.channel()
        await channel.basic_qos(prefetch_count=plan.batch)

        last_tag = [0]

        async def on_message(message: DeliveredMessage) -> None:
            state["count"] += 1
            state["unacked"] += 1
            if state["unacked"] >= every:
                state["unacked"] = 0
                await channel.basic_ack(message.delivery_tag or 0, multiple=True)
                state["last"] = time.time()
            arrived.set()
            last_tag[0] = message.delivery_tag or 0

        state["first"] = time.time()
        await channel.basic_consume(plan.name, on_message)
        while True:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), _IDLE)
            except asyncio.TimeoutError:
                break
        if state["unacked"]:
            await channel.basic_ack(last_tag[0], multiple=True)
            state["last"] = time.time()
        return Span(int(state["count"]), state["first"], state["last"])
    finally:
        await conn.close()


async def amqp_cleanup(plan: Plan) -> None:
    import aiormq

    conn = await aiormq.connect(plan.url)
    try:
        channel = await conn.channel()
        await channel.queue_delete(plan.name)
    finally:
        await conn.close()


# -- running -----------------------------------------------------------------------

Consume = Callable[[Plan], Awaitable[Span]]


def _consume_in_child(kind: str, plan: Plan, go: Any, out: Any, ready: Any) -> None:
    consume = redis_consume if kind == "redis" else amqp_consume
    __import__("redis.asyncio" if kind == "redis" else "aiormq")  # imported before the clock starts
    ready.wait()
    go.wait()  # started and imported: both begin together
    out.put(_run(consume(plan)))


def _consume_in(processes: int, kind: str, plan: Plan) -> float:
    """Consume with ``processes`` fresh processes; N over first read to last ack."""
    if processes == 1:
        consume = redis_consume if kind == "redis" else amqp_consume
        spans = [_run(consume(plan))]
    else:
        ctx = multiprocessing.get_context("spawn")
        out, go, ready = ctx.Queue(), ctx.Event(), ctx.Barrier(processes + 1)
        children = [
            ctx.Process(target=_consume_in_child, args=(kind, plan, go, out, ready)) for _ in range(processes)
        ]
        for child in children:
            child.start()
        ready.wait()
        time.sleep(0.2)  # let the children settle into waiting
        go.set()
        spans = [out.get() for _ in children]
        for child in children:
            child.join()
    total = sum(s.count for s in spans)
    if total != plan.n:
        raise SystemExit(f"floor: consumed {total} of {plan.n} messages")
    busy = [s for s in spans if s.count]
    return float(plan.n / (max(s.last for s in busy) - min(s.first for s in busy)))


def run_once(plan: Plan, kind: str) -> dict[str, float]:
    """Send, consume with 1 process, send again, consume with 2; rates per second."""
    send = redis_send if kind == "redis" else amqp_send
    cleanup = redis_cleanup if kind == "redis" else amqp_cleanup
    rates: dict[str, float] = {}
    try:
        rates["send"] = _run(send(plan))
        rates["consume, 1 process"] = _consume_in(1, kind, plan)
        _run(send(plan))
        rates["consume, 2 processes"] = _consume_in(2, kind, plan)
    finally:
        _run(cleanup(plan))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="redis://... or amqp://...")
    parser.add_argument("-n", type=int, default=20000, help="messages per run (default 20000)")
    parser.add_argument("--batch", type=int, default=100,
                        help="XREADGROUP COUNT / AMQP prefetch (default 100: hurtle's -c)")
    parser.add_argument("--send-batch", type=int, default=1000,
                        help="XADDs per pipeline / publishes in flight (default 1000, as send_many)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median and range are reported")
    args = parser.parse_args(argv)
    scheme = urlsplit(args.url).scheme
    kind = "redis" if scheme in ("redis", "rediss", "unix") else "amqp" if scheme in ("amqp", "amqps") else ""
    if not kind:
        parser.error(f"a redis:// or amqp:// URL, not {display_url(args.url)!r}")
    runs: list[dict[str, float]] = []
    for index in range(args.repeat):
        plan = Plan(args.url, args.n, args.batch, args.send_batch, f"hurtle-floor-{secrets.token_hex(6)}")
        rates = run_once(plan, kind)
        runs.append(rates)
        shown = " · ".join(f"{name} {rate:,.0f}/s" for name, rate in rates.items())
        print(f"run {index + 1}/{args.repeat}: {shown}", flush=True)
    print(f"floor, {kind}, {args.n:,} messages, batch {args.batch}, send batch {args.send_batch}:")
    for name in runs[0]:
        values = [r[name] for r in runs]
        print(f"  {name:22} median {statistics.median(values):>9,.0f}/s"
              f"  ({min(values):,.0f}-{max(values):,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
