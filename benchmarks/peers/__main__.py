"""``python -m benchmarks.peers WORKLOAD --broker redis://... --peers NAMES``, from a checkout.

hurtle and the named task queues run the workload in turn, on the same Redis,
each run verified as ``hurtle bench`` verifies its own (``compare.py``). A
mistake in the command is one line on stderr and exit code 2, as in ``hurtle``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import click

from benchmarks import peers
from benchmarks.peers import rabbit
from benchmarks.peers.compare import PROG, compare
from hurtle.bench import io_target
from hurtle.bench.runner import Options
from hurtle.bench.workloads import DEFAULT_KIND, describe, load
from hurtle.cli.common import EXIT_USER_ERROR, fail
from hurtle.errors import HurtleError

WORKLOADS = ("noop", "latency", "heavyinit", "io", "chord")  # ping runs hurtle alone: `hurtle bench ping`


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("workload", type=click.Choice(WORKLOADS))
@click.option("--peers", "peer_list", metavar="NAMES", required=True,
              help="Run these task queues, alternating with hurtle, on the --broker:"
              " a comma list of celery,dramatiq,rq,arq,huey,taskiq (pip install -e '.[bench]');"
              " on RabbitMQ, celery,dramatiq.")
@click.option("--broker", "broker_url", help="The broker every system runs on: redis://HOST:PORT/DB,"
              " or amqp://USER:PASSWORD@HOST:PORT/ for celery and dramatiq.")
@click.option("-n", "count", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Tasks per run.")
@click.option("-p", "--processes", type=click.IntRange(min=1),
              help="Worker processes per system. Default: CPU count.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs of each system; the median and range are reported.")
@click.option("--kind", type=click.Choice(["sync", "async"]),
              help="sync: `def` tasks; async: `async def`, for the systems that have them."
              " Default: async for latency, sync otherwise.")
@click.option("--scale", type=click.FloatRange(min=0), default=1.0, hidden=True,
              help="latency: multiply every sleep by this (tests).")
@click.option("--io", "io_kind", type=click.Choice(io_target.TARGETS), default="redis", show_default=True,
              help="io: each task's round trip: an INCR on Redis, or a GET to an HTTP server the bench"
              " starts on 127.0.0.1.")
@click.option("--io-redis", metavar="URL", default=io_target.DEFAULT_REDIS, show_default=True,
              help="io --io redis: the Redis the tasks INCR.")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="hurtle's calls per send_many.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: each run, then a summary per system.")
def main(
    workload: str, peer_list: str, broker_url: str | None, count: int, processes: int | None,
    repeat: int, kind: str | None, scale: float, io_kind: str, io_redis: str, batch: int, as_json: bool,
) -> None:
    """Run WORKLOAD on hurtle and each peer in turn; report the verified runs side by side."""
    names = _peer_names(peer_list, broker_url, workload)
    kind = kind or DEFAULT_KIND.get(workload, "sync")
    options = replace(Options(count, broker_url, processes or os.cpu_count() or 1, batch, kind, scale),
                      io=io_kind, io_redis=io_redis)
    try:
        run = load(workload)
        if workload == "io":
            io_target.check_reachable(io_kind, io_redis)
    except HurtleError as exc:  # the workload's App read a bad $HURTLE_BROKER; no I/O target
        fail(str(exc))
    compare(workload, run, options, names, repeat, as_json, describe(workload, options))


def _peer_names(peer_list: str, broker_url: str | None, workload: str = "noop") -> list[str]:
    """The --peers names, checked: known, installed, on a Redis broker; else one line, exit 2."""
    names = list(dict.fromkeys(name.strip().lower() for name in peer_list.split(",") if name.strip()))
    if not names:
        fail(f"--peers: name one or more of {','.join(peers.NAMES)}")
    unknown = [name for name in names if name not in peers.NAMES]
    if unknown:
        fail(f"--peers: unknown peer {unknown[0]!r}; known: {','.join(peers.NAMES)}")
    if broker_url and rabbit.is_amqp(broker_url):
        if workload == "chord":
            fail("--broker: the chord comparison runs on Redis (the peers' chords keep their state there)")
        others = [name for name in names if name not in rabbit.PEERS]
        if others:
            fail(f"--peers: {others[0]} runs on Redis only; on RabbitMQ: {','.join(rabbit.PEERS)}")
    elif not broker_url or not broker_url.startswith(("redis://", "rediss://")):
        fail("--peers: the peers run on Redis (celery and dramatiq on RabbitMQ too);"
             " give --broker redis://HOST:PORT/DB or amqp://USER:PASSWORD@HOST:PORT/")
    for name in names:
        if workload == "chord" and name not in peers.CHORDS:
            fail(f"--peers: chord compares with {' and '.join(peers.CHORDS)}; {name} has no chord")
        absent = peers.missing(name)
        if absent:
            fail(f"--peers: {name} needs {', '.join(absent)}, not installed: pip install -e '.[bench]'")
    return names


def run_main() -> None:
    """The command, its user errors one line and exit code 2 (as ``hurtle.cli.main``)."""
    try:
        code = main.main(prog_name=PROG, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{PROG}: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"{PROG}: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USER_ERROR if isinstance(exc, click.UsageError) else exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run_main()
