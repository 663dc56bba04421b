"""Whether an installed client library is a version hurtle's adapter was written for.

Each broker's ``compat`` module touches its client library's internals and says
which versions it was written for; outside them it warns and takes the public,
slower path, rather than failing somewhere deep in a send.
"""

from __future__ import annotations

import warnings

Release = tuple[int, int]


def in_range(library: str, installed: str, bounds: tuple[Release, Release], otherwise: str) -> bool:
    """True when ``installed`` lies in ``bounds`` (lowest included, highest excluded);
    else a ``RuntimeWarning`` saying what happens instead (``otherwise``)."""
    major, _, rest = installed.partition(".")
    minor = rest.split(".")[0]
    release = (int(major), int(minor) if minor.isdigit() else 0)
    if bounds[0] <= release < bounds[1]:
        return True
    (low_major, low_minor), (high_major, _) = bounds
    warnings.warn(
        f"hurtle was written for {library} >={low_major}.{low_minor},<{high_major} and {library}"
        f" {installed} is installed: {otherwise}",
        RuntimeWarning, stacklevel=3,
    )
    return False
