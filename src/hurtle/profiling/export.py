"""A profile's stacks as the files flame graph tools read.

- folded stacks (``frame;frame;frame microseconds`` lines): flamegraph.pl, inferno
- speedscope's JSON format: one "sampled" profile weighted in microseconds
- a self-contained HTML page: pyinstrument's interactive viewer

``stacks`` are frame labels root first, as ``hurtle.profiling.record`` keeps them,
with their time in microseconds (usually folded by ``hurtle.profiling.fold``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from hurtle.profiling.record import SEPARATOR, Frame

Stacks = Mapping[tuple[str, ...], int]

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"

# pyinstrument's page fetches its fonts from Google at load time; the viewer is
# meant to open offline (and without telling anyone what was profiled), so any
# address the script would load becomes an empty data URL and system fonts show.
_NETWORK_LOAD = re.compile(r"""(\.(?:href|src)\s*=\s*)(["'])https?://[^"']*\2""")


def _ordered(stacks: Stacks) -> list[tuple[tuple[str, ...], int]]:
    """Stacks sorted, so siblings sit together (viewers merge neighbours only)."""
    return sorted((stack, time) for stack, time in stacks.items() if stack and time > 0)


def folded_text(stacks: Stacks) -> str:
    """One ``root;...;leaf microseconds`` line per stack."""
    return "".join(f"{SEPARATOR.join(stack)} {time}\n" for stack, time in _ordered(stacks))


def speedscope_json(name: str, stacks: Stacks) -> str:
    """speedscope's file format: frames shared, one sampled profile whose weights
    are the stacks' microseconds (samples root first)."""
    index: dict[str, int] = {}
    frames: list[dict[str, object]] = []
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, time in _ordered(stacks):
        sample = []
        for label in stack:
            if label not in index:
                index[label] = len(frames)
                frames.append(_speedscope_frame(label))
            sample.append(index[label])
        samples.append(sample)
        weights.append(time)
    document = {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": name,
        "exporter": "hurtle",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [{
            "type": "sampled", "name": name, "unit": "microseconds",
            "startValue": 0, "endValue": sum(weights), "samples": samples, "weights": weights,
        }],
    }
    return json.dumps(document)


def _speedscope_frame(label: str) -> dict[str, object]:
    frame = Frame.parse(label)
    name = ("~" if frame.plumbing else "") + frame.name
    if frame.line == 0:
        return {"name": name}
    return {"name": name, "file": frame.path, "line": frame.line}


def flame_html(name: str, stacks: Stacks, cpu_us: int = 0, last: float = 0.0) -> str:
    """pyinstrument's interactive page for these stacks, loading nothing from the network."""
    from pyinstrument.renderers import HTMLRenderer
    from pyinstrument.session import Session

    ordered = _ordered(stacks)
    records = [([_pyinstrument_identifier(label) for label in stack], time / 1e6) for stack, time in ordered]
    # The saved-session format of ``Session.load``: records are a stack of
    # "function NUL file NUL line" identifiers, root first, and its seconds.
    session = Session.from_json({
        "frame_records": records,
        "start_time": last,
        "duration": sum(time for _, time in ordered) / 1e6,
        "sample_count": len(records),
        # Where profiling started: the first root, so pyinstrument trims nothing off.
        "start_call_stack": records[0][0][:1] if records else [],
        "target_description": f"hurtle task {name}",
        "cpu_time": cpu_us / 1e6,
        "sys_path": [],
        "sys_prefixes": [],
    })
    page: str = HTMLRenderer().render(session)
    return _NETWORK_LOAD.sub(r"\1\2data:,\2", page)


def _pyinstrument_identifier(label: str) -> str:
    frame = Frame.parse(label)
    name = ("~" if frame.plumbing else "") + frame.name
    return f"{name}\x00{frame.path}\x00{frame.line}"
