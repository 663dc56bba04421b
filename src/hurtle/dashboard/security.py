"""Who may read the dashboard, and which requests may change anything.

- ``--auth user:password``: every request carries HTTP Basic credentials.
- ``--token T``: every request carries ``Authorization: Bearer T``, or the
  cookie that opening any page with ``?token=T`` sets (HttpOnly, SameSite=Strict);
  that request is answered with a redirect to the same page without its query,
  so the token leaves the address bar and the history.
- Every browser gets a session cookie; a POST must send ``X-CSRF-Token``, an HMAC
  of that session under a key drawn when the server starts, which only a page of
  the dashboard can read (it is written into the page). Another site's form can
  neither read it nor send the header.

Every answer carries a Content-Security-Policy that allows scripts and styles from
the dashboard alone, so markup that slipped into a page could still run nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

SESSION_COOKIE = "hurtle_session"
TOKEN_COOKIE = "hurtle_token"
CSRF_HEADER = "x-csrf-token"
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Access:
    """The credentials the server asks for (none: open to whoever reaches it)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def csrf_token(self, session: str) -> str:
        return hmac.new(self.key, session.encode(), hashlib.sha256).hexdigest()

    def allows(self, request: Request) -> bool:
        """Whether the request carries the credentials asked for."""
        if self.user is not None and self.password is not None:
            return self._basic(request.headers.get("authorization", ""))
        if self.token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and _same(given.strip(), self.token):
                return True
            return _same(request.cookies.get(TOKEN_COOKIE, ""), self.token)
        return True

    def _basic(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        assert self.user is not None and self.password is not None
        # Both compared, always: the time taken does not say which one was wrong.
        return _same(user, self.user) & _same(password, self.password)

    def posted_by_page(self, request: Request) -> bool:
        """Whether a POST carries the CSRF token of its session."""
        session = request.cookies.get(SESSION_COOKIE, "")
        given = request.headers.get(CSRF_HEADER, "")
        return bool(session) and _same(given, self.csrf_token(session))


class AccessMiddleware(BaseHTTPMiddleware):
    """Refuses requests without the credentials, sets the token and session cookies,
    and adds the security headers to every answer."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        super().__init__(app)
        self.access = access

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._answer(request, call_next)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _answer(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        access = self.access
        given = request.query_params.get("token")
        if access.token is not None and given is not None:
            if not _same(given, access.token):
                return PlainTextResponse("wrong token\n", status_code=401)
            response: Response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(TOKEN_COOKIE, access.token, httponly=True, samesite="strict")
            return response
        if not access.allows(request):
            if access.user is not None:
                return PlainTextResponse(
                    "credentials required\n", status_code=401,
                    headers={"www-authenticate": 'Basic realm="hurtle dashboard", charset="UTF-8"'},
                )
            return PlainTextResponse(
                "a token is required: open the page with ?token=..., or send Authorization: Bearer ...\n",
                status_code=401,
            )
        session = request.cookies.get(SESSION_COOKIE)
        fresh = session is None
        request.state.session = session or secrets.token_urlsafe(24)
        response = await call_next(request)
        if fresh:
            response.set_cookie(SESSION_COOKIE, request.state.session, httponly=True, samesite="strict")
        return response
