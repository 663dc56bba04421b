"""How the task history lies in a tally store (``hurtle.tallies``): one key per minute.

``history:<minute>`` (minute: Unix seconds // 60) holds every task's figures for
that minute, from every worker process on every machine, merged by adding. A
reader of the last hour reads 60 keys in one call (``TallyStore.read_many``),
whatever the number of tasks; a key per task per minute would make it list and
read thousands. Each field is ``<code>|<queue>|<task>``:

| code | value |
|---|---|
| ``ok`` ``fail`` ``retry`` ``dead`` ``cancel`` | messages that came to that outcome (``OUTCOMES``) |
| ``r<i>`` / ``w<i>`` | runs whose run time / queue wait fell in bucket ``i`` of ``task_figures.BOUNDS`` |
| ``rus`` / ``wus`` | the sum of those run times / queue waits, in microseconds |

and ``in|<queue>`` (no task) is the highest count of messages the queue ever
took in that a worker saw during the minute (``Broker.added_counts``), raised,
never added, so many workers sampling it count once. Fields that would be 0 are
not written. The queue name is percent-quoted (it cannot then hold a ``|``); the
task name comes last and is kept as it is. A field this version does not know is
skipped when read, so a newer writer does not break an older reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote

from hurtle.observe.task_figures import BOUNDS, OUTCOMES, FigureKey, MinuteFigures

PREFIX = "history:"
CODES: tuple[str, ...] = ("ok", "fail", "retry", "dead", "cancel")  # one per entry of OUTCOMES, in order
_OUTCOME_OF = {code: index for index, code in enumerate(CODES)}
_BUCKETS = len(BOUNDS) + 1
_US = 1_000_000
IN = "in"

assert len(CODES) == len(OUTCOMES)


def minute_key(minute: int) -> str:
    """The key of one minute's figures."""
    return f"{PREFIX}{minute}"


def encode(figures: Mapping[FigureKey, MinuteFigures]) -> dict[int, dict[str, int]]:
    """``figures`` as the fields to add to each minute's key, by minute; no zero field."""
    by_minute: dict[int, dict[str, int]] = {}
    for (task, queue, minute), figure in figures.items():
        fields = by_minute.setdefault(minute, {})
        tail = f"|{quote(queue, safe='')}|{task}"
        for code, count in zip(CODES, figure.outcomes, strict=True):
            if count:
                _add(fields, code + tail, count)
        timings = (("r", figure.run, figure.run_seconds), ("w", figure.wait, figure.wait_seconds))
        for letter, buckets, seconds in timings:
            for index, count in enumerate(buckets):
                if count:
                    _add(fields, f"{letter}{index}{tail}", count)
            micros = round(seconds * _US)
            if micros:
                _add(fields, f"{letter}us{tail}", micros)
    return by_minute


def _add(fields: dict[str, int], name: str, count: int) -> None:
    fields[name] = fields.get(name, 0) + count


def in_field(queue: str) -> str:
    """The field of a queue's sampled count of messages taken in."""
    return f"{IN}|{quote(queue, safe='')}"


def decode(fields: Mapping[str, int]) -> tuple[dict[tuple[str, str], MinuteFigures], dict[str, int]]:
    """One minute's fields as figures by (task, queue), and the queues' counts taken in."""
    figures: dict[tuple[str, str], MinuteFigures] = {}
    added: dict[str, int] = {}
    for name, value in fields.items():
        parts = name.split("|", 2)
        if len(parts) == 2 and parts[0] == IN:
            added[unquote(parts[1])] = value
            continue
        if len(parts) != 3:
            continue
        code, queue, task = parts
        _apply(figures, (task, unquote(queue)), code, value)
    return figures, added


def _known(code: str) -> bool:
    if code in _OUTCOME_OF:
        return True
    if code[:1] not in ("r", "w"):
        return False
    rest = code[1:]
    return rest == "us" or (rest.isdigit() and int(rest) < _BUCKETS)


def _apply(
    figures: dict[tuple[str, str], MinuteFigures], key: tuple[str, str], code: str, value: int
) -> None:
    if not _known(code):
        return  # a field of a newer version
    outcome = _OUTCOME_OF.get(code)
    figure = figures.get(key)
    if figure is None:
        figure = figures[key] = MinuteFigures()
    if outcome is not None:
        figure.outcomes[outcome] += value
    elif code == "rus":
        figure.run_seconds += value / _US
    elif code == "wus":
        figure.wait_seconds += value / _US
    else:
        (figure.run if code[0] == "r" else figure.wait)[int(code[1:])] += value
