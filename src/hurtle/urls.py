"""Broker and result-store URLs, held so that printing one never shows its password.

A URL carries its credentials (``redis://:pw@host``, ``amqp://user:pw@host``,
``?password=pw``), and URLs end up in reprs, error messages, logs and command
output. ``SecretURL`` makes the masked form the only one that prints: ``str``,
``repr`` and f-strings show ``display_url``; ``reveal()`` gives the URL itself
to the one call that connects.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlencode

#: Query options whose value is a credential, by a part of their name (redis-py
#: takes ``?password=``; a client library may take a token or a key's password).
_SECRET_OPTION_PARTS = ("pass", "secret", "token")
MASK = "***"
_MIN_PIECE = 3  # characters: see _secrets


class SecretURL:
    """A URL that prints without its password, and equals the plain string it holds."""

    __slots__ = ("_url",)

    def __init__(self, url: str | SecretURL) -> None:
        if isinstance(url, SecretURL):
            url = url.reveal()
        if not isinstance(url, str):
            raise TypeError(f"a URL is a str, not {type(url).__name__}")
        self._url = url

    def reveal(self) -> str:
        """The URL, password and all: for the client library that connects, never to print."""
        return self._url

    @property
    def scheme(self) -> str:
        """``redis``, ``amqp``, ``sqlite``...: what comes before the first colon, lower case."""
        return self._url.partition(":")[0].lower()

    def scrub(self, text: str) -> str:
        """``text`` with this URL's secrets masked: for a client library's error
        about the URL, which may quote a part of it (urllib's "Port could not be
        cast to integer value as '...'" quotes a password that holds a ``/``)."""
        for secret in sorted(_secrets(self._url), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __str__(self) -> str:
        return display_url(self._url)

    def __repr__(self) -> str:
        return f"SecretURL({display_url(self._url)!r})"

    def __format__(self, spec: str) -> str:
        return format(display_url(self._url), spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretURL):
            return self._url == other._url
        if isinstance(other, str):
            return self._url == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._url)


def display_url(url: str | SecretURL) -> str:
    """The URL fit to print: passwords masked, a SQLite path made absolute (a
    relative one is relative to the current directory, which a reader can't see).

    Masks without parsing the URL strictly: a malformed URL is shown in the error
    that refuses it, so a password with a ``/``, ``?`` or ``#`` in it is masked too.
    Everything before the last ``@`` is taken for the user part, which masks too
    much only when a path or query holds an ``@``.
    """
    if isinstance(url, SecretURL):
        url = url.reveal()
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask_userinfo(url)
    rest = _mask_userinfo(rest)
    if scheme.lower() == "sqlite" and rest.startswith("/"):
        path, mark, query = rest[1:].partition("?")
        rest = f"/{os.path.abspath(path)}{mark}{query}"
    return f"{scheme}://{rest}"


def _mask_userinfo(text: str) -> str:
    """``user:password@host...`` with the password masked, and secret query options."""
    userinfo, at, after = text.rpartition("@")
    if not at:
        return _mask_query(text)
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}@{_mask_query(after)}" if colon else f"{userinfo}@{_mask_query(after)}"


def _mask_query(text: str) -> str:
    head, mark, query = text.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret(name) for name, _ in pairs):
        return text
    return head + mark + urlencode([(k, MASK if _is_secret(k) else v) for k, v in pairs], safe="*")


def _secrets(url: str) -> set[str]:
    """Every part of ``url`` that may be a secret or a piece of one, as written and
    percent-decoded. Pieces shorter than ``_MIN_PIECE`` are left out: masking every
    "a" in a message would garble it, and so short a piece tells little."""
    rest = url.partition("://")[2] or url
    userinfo, at, _ = rest.rpartition("@")
    found = set()
    if at and ":" in userinfo:
        password = userinfo.partition(":")[2]
        found.add(password)
        found.update(re.split(r"[/?#@:&=;]", password))
    for name, value in parse_qsl(url.partition("?")[2], keep_blank_values=True):
        if _is_secret(name):
            found.add(value)
    found |= {unquote(piece) for piece in found}
    return {piece for piece in found if len(piece) >= _MIN_PIECE}


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_OPTION_PARTS)
