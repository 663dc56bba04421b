"""``hurtle status task``'s picture of a workflow: its tree, each part's state and times.

A group of many members shows its first ``MEMBERS_SHOWN`` and counts the rest
by state (``--json`` gives every one). Task names and errors are printed
through ``literal``: they come from records anyone could have written.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from hurtle.cli.literal import literal
from hurtle.workflows.tree import FlowPart

MEMBERS_SHOWN = 20
_STATE_STYLES = {"succeeded": "green", "failed": "red", "running": "cyan", "queued": "yellow"}


def print_flow(part: FlowPart) -> None:
    """The workflow as a tree under a ``workflow`` heading."""
    tree = Tree(Text("workflow", style="bold"))
    _add(tree, part)
    Console().print(tree)


def _add(tree: Tree, part: FlowPart) -> None:
    branch = tree.add(label(part))
    shown = part.children if part.kind != "group" else part.children[:MEMBERS_SHOWN]
    for child in shown:
        _add(branch, child)
    rest = part.children[len(shown):]
    if rest:
        counts = Counter(c.state for c in rest)
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        branch.add(Text(f"… {len(rest)} more: {summary}", style="dim"))


def label(part: FlowPart) -> Text:
    """One line: what the part is, its state, and its times."""
    if part.kind in ("step", "on_failure"):
        text = literal(part.task or "?")
        if part.kind == "on_failure":
            text = Text("on failure: ").append_text(text)
    else:
        count = f" of {len(part.children)}" if part.kind == "group" else ""
        text = Text(f"{part.kind}{count}", style="bold")
    if part.id is not None:
        text.append(f" {part.id}", style="dim")
    text.append("  ").append(part.state, style=_STATE_STYLES.get(part.state, ""))
    if part.started_at is not None and part.finished_at is not None:
        text.append(f"  {_ms(part.finished_at - part.started_at)}")
    elif part.started_at is not None:
        text.append("  started", style="dim")
    if part.error:
        text.append("  ").append_text(literal(part.error.splitlines()[0][:200]))
    return text


def _ms(seconds: float) -> str:
    return f"{max(0.0, seconds) * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f}s"
