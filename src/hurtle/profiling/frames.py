"""Naming a code object once: its frame label, and whether it is the user's own code.

The sampler meets the same few hundred code objects at every sample, so each is
labelled once and remembered (a code object lives as long as its function).
"""

from __future__ import annotations

import os
import sysconfig
from types import CodeType

import hurtle
from hurtle.profiling.record import frame_label

USER = 0  # the application's own code: where "the task's own line" is looked for
LIBRARY = 1  # the standard library and installed packages
PLUMBING = 2  # hurtle itself and the asyncio and threading machinery: folded away in views

_HURTLE_ROOT = os.path.dirname(os.path.abspath(hurtle.__file__))
_STDLIB = tuple({os.path.abspath(sysconfig.get_paths()[name]) + os.sep for name in ("stdlib", "platstdlib")})
_PLUMBING_STDLIB = ("asyncio" + os.sep, "concurrent" + os.sep, "threading.py", "selectors.py")
#: How an installed package's and the standard library's files are shown.
LIBRARY_PREFIXES = ("site-packages/", "stdlib/")
_PACKAGE_DIRS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def classify(path: str) -> tuple[int, str]:
    """The origin of a file, and how to show its path: short, and the same on every
    machine for library code, so profiles from several machines merge. An installed
    package's file is ``site-packages/<its path in the package root>``, the standard
    library's ``stdlib/<its path>``: views can tell them from the user's own files."""
    if path.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return LIBRARY, path
    path = os.path.abspath(path)
    if path.startswith(_HURTLE_ROOT + os.sep):
        return PLUMBING, "hurtle/" + path[len(_HURTLE_ROOT) + 1:].replace(os.sep, "/")
    for marker in _PACKAGE_DIRS:
        at = path.rfind(marker)
        if at >= 0:
            return LIBRARY, LIBRARY_PREFIXES[0] + path[at + len(marker):].replace(os.sep, "/")
    for root in _STDLIB:
        if path.startswith(root):
            short = path[len(root):]
            origin = PLUMBING if short.startswith(_PLUMBING_STDLIB) else LIBRARY
            return origin, LIBRARY_PREFIXES[1] + short.replace(os.sep, "/")
    cwd = os.getcwd() + os.sep
    return USER, path[len(cwd):] if path.startswith(cwd) else path


class Labels:
    """Labels and origins of code objects, computed once each."""

    def __init__(self) -> None:
        self._known: dict[CodeType, tuple[str, int, str]] = {}

    def of(self, code: CodeType) -> tuple[str, int, str]:
        """``(label, origin, shown path)`` of ``code``."""
        known = self._known.get(code)
        if known is None:
            origin, path = classify(code.co_filename)
            qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: 3.11+
            known = (frame_label(qualname, path, code.co_firstlineno, origin == PLUMBING), origin, path)
            self._known[code] = known
        return known

