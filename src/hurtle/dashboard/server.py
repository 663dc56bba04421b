"""The dashboard's starlette application: pages, their JSON, and the actions.

Each page is the same small HTML shell (``page.py``) whose script polls the
page's JSON every few seconds and draws it. Actions (requeue, purge, cancel) are POSTs that carry the
session's CSRF token (``security``), are refused with ``--read-only``, and are
logged on the ``hurtle.dashboard`` logger, one line each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hurtle.app import App
from hurtle.client import make_connection
from hurtle.dashboard import dead, profiles, views
from hurtle.dashboard.page import PAGES, render
from hurtle.dashboard.security import Access, AccessMiddleware
from hurtle.dashboard.source import Source
from hurtle.errors import HurtleError
from hurtle.urls import SecretURL

log = logging.getLogger("hurtle.dashboard")

STATIC = Path(__file__).parent / "static"
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_IDS = 1000  # dead letters one requeue request may name


@dataclass(frozen=True)
class Options:
    read_only: bool = False
    hide_args: bool = False


class Refused(Exception):
    """A request the dashboard will not carry out: its status and why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def create_app(app: App, options: Options, access: Access, broker_url: SecretURL | None = None) -> Starlette:
    """The dashboard for ``app`` (``broker_url`` overrides its broker)."""
    url = SecretURL(broker_url or app.broker_url)
    holder: dict[str, Source] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connection = make_connection(url, app.results_url, app.visibility_timeout)
        holder["source"] = Source.open(app, connection, url)
        try:
            yield
        finally:
            await holder.pop("source").close()

    def reading(read: Callable[[Source, Request], Awaitable[Any]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                found = await read(holder["source"], request)
            except Refused as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except HurtleError as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)
            if found is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse(found)

        return endpoint

    def acting(act: Callable[[Source, dict[str, Any]], Awaitable[dict[str, Any]]], name: str) -> Endpoint:
        async def read(source: Source, request: Request) -> dict[str, Any]:
            if options.read_only:
                raise Refused(403, "this dashboard is read-only")
            if not access.posted_by_page(request):
                raise Refused(403, "missing or wrong CSRF token: reload the page")
            try:
                body = await request.json()
            except ValueError:
                raise Refused(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise Refused(400, "the body is not a JSON object")
            done = await act(source, body)
            client = request.client.host if request.client else "?"
            log.warning("%s by %s: %s (%s)", name, client, _said(body), _said(done))
            return done

        return reading(read)

    def page(name: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            token = access.csrf_token(request.state.session)
            return HTMLResponse(render(name, token, options.read_only, options.hide_args))

        return endpoint

    routes: list[BaseRoute] = [Route(path, page(name)) for name, (path, _) in PAGES.items()]
    routes += [
        Route("/api/overview", reading(lambda s, r: views.overview(s))),
        Route("/api/workers", reading(lambda s, r: views.workers(s))),
        Route("/api/tasks", reading(lambda s, r: views.tasks(s, _window(r)))),
        Route("/api/task/{task_id}", reading(
            lambda s, r: views.task(s, r.path_params["task_id"], options.hide_args))),
        Route("/api/dead", reading(
            lambda s, r: dead.listing(s, dead.Query.of(dict(r.query_params)), options.hide_args))),
        Route("/api/profiles", reading(lambda s, r: profiles.profiled(s))),
        Route("/api/profile", reading(lambda s, r: profiles.flame(s, r.query_params.get("task", "")))),
        Route("/api/schedules", reading(lambda s, r: views.schedules(s, options.hide_args))),
        Route("/api/dead/requeue", acting(_requeue, "requeue"), methods=["POST"]),
        Route("/api/dead/requeue-matching", acting(_requeue_matching, "requeue matching"), methods=["POST"]),
        Route("/api/dead/purge", acting(_purge, "purge"), methods=["POST"]),
        Route("/api/task/cancel", acting(_cancel, "cancel"), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(AccessMiddleware, access=access)]
    )


def _window(request: Request) -> int:
    asked = request.query_params.get("minutes", "")
    return int(asked) if asked.isdigit() and int(asked) in views.WINDOWS else views.WINDOWS[0]


def _said(value: dict[str, Any]) -> str:
    """An action's request or answer in a log line: each field, long lists counted."""
    shown = []
    for key, item in value.items():
        if isinstance(item, list) and len(item) > 5:
            item = f"{item[:5]!r} +{len(item) - 5} more"
        shown.append(f"{key}={item!r}")
    return ", ".join(shown)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise Refused(400, f"{key} is not text")
    return value


async def _requeue(source: Source, body: dict[str, Any]) -> dict[str, Any]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise Refused(400, "ids: a list of dead letter or task ids")
    if len(ids) > MAX_IDS:
        raise Refused(400, f"at most {MAX_IDS} ids at a time")
    return await dead.requeue(source, ids)


async def _requeue_matching(source: Source, body: dict[str, Any]) -> dict[str, Any]:
    query = dead.Query(_text(body, "queue") or None, _text(body, "q").strip(), 0)
    return await dead.requeue_matching(source, query)


async def _cancel(source: Source, body: dict[str, Any]) -> dict[str, Any]:
    task_id = _text(body, "id").strip()
    if not task_id:
        raise Refused(400, "id: the task id to cancel")
    return await views.cancel(source, task_id)


async def _purge(source: Source, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("confirm") is not True:
        raise Refused(400, "a purge needs confirm: true")
    return await dead.purge(source, _text(body, "queue") or None)
