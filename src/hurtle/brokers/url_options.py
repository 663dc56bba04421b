"""A broker URL's query: hurtle's own options, its client library's, and nothing else.

Every broker refuses an option it does not know, naming it: a misspelt
``?prefx=app1`` silently ignored would leave the default prefix in force, and a
worker consuming another app's queues.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from urllib.parse import SplitResult, parse_qsl

from hurtle.errors import ConfigurationError


def query_options(parts: SplitResult) -> list[tuple[str, str]]:
    """The URL's query as (name, value) pairs; an option without a value counts too."""
    return parse_qsl(parts.query, keep_blank_values=True)


def rebuild(parts: SplitResult, query: str, scheme: str | None = None) -> str:
    """The URL of ``parts`` with another query (and scheme). Not ``urlunsplit``: it drops
    the ``//`` of an empty host, and ``unix:///run/redis.sock`` became ``unix:/run/redis.sock``,
    which newer redis-py refuses."""
    url = f"{scheme or parts.scheme}://{parts.netloc}{parts.path}"
    return f"{url}?{query}" if query else url


def refuse_unknown(kind: str, names: Iterable[str], known: Mapping[str, Collection[str]]) -> None:
    """Raise ``ConfigurationError`` for the first of ``names`` that no entry of ``known``
    (who takes them: their names) lists, naming it and every option there is."""
    every = {name for group in known.values() for name in group}
    for name in names:
        if name in every:
            continue
        close = difflib.get_close_matches(name, sorted(every), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        taken = "; ".join(
            f"{who} takes {', '.join(sorted(group))}" for who, group in known.items() if group
        )
        raise ConfigurationError(
            f"unknown option {name!r} in the {kind} URL{hint}: {taken or 'it takes no options'}"
        )
