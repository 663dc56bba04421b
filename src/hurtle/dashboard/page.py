"""The HTML shell every page shares: the navigation and an empty ``main`` that the
page's script fills from its JSON. Nothing from the broker is written here: the
script puts it in the document as text (``textContent``), never as markup."""

from __future__ import annotations

from html import escape

#: Each page's name: its path and its title in the navigation.
PAGES = {
    "overview": ("/", "Overview"),
    "workers": ("/workers", "Workers"),
    "tasks": ("/tasks", "Tasks"),
    "task": ("/task/{task_id}", "Task"),
    "dead": ("/dead", "Dead letters"),
    "profiles": ("/profiles", "Profiles"),
    "schedules": ("/schedules", "Schedules"),
}
_IN_NAV = ("overview", "workers", "tasks", "dead", "profiles", "schedules")


def render(name: str, csrf_token: str, read_only: bool, hide_args: bool) -> str:
    title = PAGES[name][1]
    nav = "".join(
        f'<a href="{PAGES[n][0]}"{" aria-current=page" if n == name else ""}>{escape(PAGES[n][1])}</a>'
        for n in _IN_NAV
    )
    flags = (' data-read-only="1"' if read_only else "") + (' data-hide-args="1"' if hide_args else "")
    mode = '<span class="mode">read-only</span>' if read_only else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hurtle · {escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body data-page="{escape(name)}" data-csrf="{escape(csrf_token)}"{flags}>
<header><span class="brand">hurtle</span><nav>{nav}</nav>{mode}<span id="status"></span></header>
<main id="main"><h1>{escape(title)}</h1><div id="content"></div></main>
<script src="/static/chart.js"></script>
<script src="/static/dashboard.js"></script>
</body>
</html>
"""
