"""``Task[P, R]`` keeps the decorated function's signature: checked by mypy.

mypy (strict, ``warn_unused_ignores``) checks this file: each annotated line
must type-check, and each ``# type: ignore[code]`` line must really be the
error it names, or mypy reports the ignore as unused. The ``uses_*`` functions
are never called; pytest only imports the module (see the one test below).
"""

from __future__ import annotations

from typing import Any

import hurtle

app = hurtle.App("memory://typing-signatures")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="io", retries=2, timeout=5.0)
def scale(x: float, *, by: float = 2.0) -> float:
    return x * by


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


@app.task(rate_limit="100/m", max_concurrency=5)
def call_partner(order: int) -> str:
    return str(order)


@app.task(name="typing.lookup", queue="io")
async def lookup(key: str, default: int | None = None) -> int | None:
    return default


def uses_sync_tasks() -> None:
    handle: hurtle.Handle[int] = add.send(1, 2)
    total: int = handle.result(timeout=1.0)
    scaled: hurtle.Handle[float] = scale.send(1.5, by=3.0)
    delayed: hurtle.Handle[int] = add.options(delay=5.0, queue="low").send(1, 2)
    many: list[hurtle.Handle[int]] = add.send_many([(1, 2), {"x": 3, "y": 4}])
    by_name: hurtle.Handle[Any] = app.send_task("tests.typing.add", 1, 2)
    handle_id: str = handle.id
    unique: hurtle.Handle[int] = add.options(unique_key="user:42", unique_for=600).send(1, 2)
    chosen: hurtle.Handle[int] = add.options(id="report-2026-12-06").send(1, 2)
    unique.cancel()
    progress: hurtle.Progress | None = chosen.progress()
    print(total, scaled, delayed, many, by_name, handle_id, progress)

    add.send("x", 2)  # type: ignore[arg-type]
    add.send(1)  # type: ignore[call-arg]
    add.send(1, 2, 3)  # type: ignore[call-arg]
    add.send(1, z=2)  # type: ignore[call-arg]
    scale.send(1.0, 3.0)  # type: ignore[call-arg]
    add.options(delay=1.0).send(1, "y")  # type: ignore[arg-type]
    add.options(unique_key="k").send(1, "y")  # type: ignore[arg-type]
    limited: hurtle.Handle[str] = call_partner.send(42)
    print(limited)
    call_partner.send("42")  # type: ignore[arg-type]
    call_partner.options(rate_limit="1/s")  # type: ignore[call-arg]
    wrong: hurtle.Handle[str] = add.send(1, 2)  # type: ignore[assignment]
    not_int: str = add.send(1, 2).result()  # type: ignore[assignment]
    print(wrong, not_int)


async def uses_async_tasks() -> None:
    handle: hurtle.Handle[bytes] = await fetch.send_async("https://example.org")
    body: bytes = await handle.result_async(timeout=1.0)
    sync_handle: hurtle.Handle[bytes] = fetch.send("https://example.org")
    found: hurtle.Handle[int | None] = await lookup.send_async("k", default=3)
    value: int | None = found.result()
    many: list[hurtle.Handle[int]] = await add.send_many_async([(1, 2)])
    print(body, sync_handle, value, many)

    await fetch.send_async(b"https://example.org")  # type: ignore[arg-type]
    await lookup.send_async("k", default="none")  # type: ignore[arg-type]
    text: str = await handle.result_async()  # type: ignore[assignment]
    print(text)


def uses_handles_by_id() -> None:
    elsewhere: hurtle.Handle[Any] = app.handle("0123", "tests.typing.add")
    status: hurtle.TaskStatus = elsewhere.status()
    print(status == "running")

    app.handle(123)  # type: ignore[arg-type]
    not_str: int = elsewhere.status()  # type: ignore[assignment]
    print(not_str, status == "runnin")  # type: ignore[comparison-overlap]


@app.periodic("*/5 * * * *", tz="Europe/Berlin", queue="cron", retries=1)
def sweep() -> int:
    return 0


@app.periodic(every=30.0, catch_up="all")
@app.task(queue="io")
async def ping() -> bool:
    return True


def uses_periodic_tasks() -> None:
    swept: hurtle.Handle[int] = sweep.send()
    pinged: hurtle.Handle[bool] = ping.send()
    daily = app.schedule(scale, cron="0 6 * * *", args=(1.5,), kwargs={"by": 2.0}, name="daily")
    name: str = daily.name
    print(swept, pinged, name)

    sweep.send(1)  # type: ignore[call-arg]
    app.periodic("* * * * *", catch_up="some")  # type: ignore[arg-type]
    app.periodic(every=1.0)(add)  # type: ignore[arg-type]
    app.periodic(every="1")  # type: ignore[arg-type]


def test_the_typed_module_imports_and_registers_its_tasks() -> None:
    assert set(app.tasks) == {
        add.name, scale.name, fetch.name, "typing.lookup", sweep.name, ping.name, call_partner.name
    }
    assert (fetch.is_async, lookup.opts.queue) == (True, "io")
    assert set(app.schedules) == {sweep.name, ping.name}
