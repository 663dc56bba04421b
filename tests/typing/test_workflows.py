"""Workflows keep their steps' types: checked by mypy, as ``test_signatures.py`` is.

Each annotated line must type-check; each ``# type: ignore[code]`` line must be
the error it names (``warn_unused_ignores`` reports one that is not). The
``uses_*`` functions are never called; pytest only imports the module.
"""

from __future__ import annotations

from typing import Any

import hurtle

app = hurtle.App("memory://typing-workflows")


@app.task
def resize(path: str) -> bytes:
    return path.encode()


@app.task
def store(image: bytes) -> str:
    return image.decode()


@app.task
def notify(location: str, user_id: int) -> bool:
    return bool(location) and user_id > 0


@app.task
async def fetch(url: str) -> int:
    return len(url)


@app.task
def report(sizes: list[int]) -> str:
    return str(sum(sizes))


@app.task
def on_error(task_id: str, error: str) -> None:
    print(task_id, error)


@app.task
def cleanup(tag: str) -> None:
    print(tag)


def uses_chains() -> None:
    flow: hurtle.Chain[Any, bool] = resize.s("a.png") | store.s() | notify.s(7)
    handle: hurtle.FlowHandle[bool] = flow.send()
    done: bool = handle.result(timeout=1.0)
    steps: list[hurtle.Handle[Any]] = handle.children
    ignoring: hurtle.FlowHandle[None] = (resize.s("a.png") | cleanup.si("t")).send()
    longer = hurtle.chain(resize.s("a.png"), store.s(), notify.s(7))
    print(done, steps, ignoring, longer)

    resize.s("a.png") | notify.s(7)  # type: ignore[operator]
    notify.s("x")  # type: ignore[call-overload]
    resize.s("a.png") | store.s() | notify.s("seven")  # type: ignore[call-overload]
    wrong: hurtle.FlowHandle[str] = (resize.s("a.png") | store.s() | notify.s(7)).send()  # type: ignore[assignment]
    resize.s("a.png") | resize.s("b.png")  # type: ignore[operator]
    print(wrong)


def uses_groups_and_chords() -> None:
    urls = ["https://example.org", "https://example.com"]
    members: hurtle.Group[Any, int] = hurtle.group(fetch.s(u) for u in urls)
    sizes: list[int] = members.send().result()
    summary: hurtle.FlowHandle[str] = hurtle.chord(members, report.s()).send()
    text: str = summary.result()
    guarded = hurtle.chord(members, report.s(), on_failure=on_error.s())
    nested = resize.s("a.png") | store.s() | hurtle.group([notify.s(1), notify.s(2)])
    flags: list[bool] = nested.send().result()
    print(sizes, text, guarded, flags)

    hurtle.chord(members, store.s())  # type: ignore[arg-type]
    number: int = summary.result()  # type: ignore[assignment]
    hurtle.chord(members, report.s(), on_failure=report.s())  # type: ignore[arg-type]
    print(number)


async def uses_async_sending() -> None:
    handle: hurtle.FlowHandle[bool] = await (resize.s("a.png") | store.s() | notify.s(7)).send_async()
    done: bool = await handle.result_async(timeout=1.0)
    print(done)


def test_the_typed_workflow_module_imports_and_registers_its_tasks() -> None:
    assert {resize.name, store.name, notify.name, fetch.name, report.name} <= set(app.tasks)
    assert repr(resize.s("a.png") | store.s()) == f"{resize.name}.s('a.png') | {store.name}.s()"
