"""Prometheus metrics for ``hurtle worker --metrics-port``.

Each worker process reports its figures to the supervisor over a pipe of its
own (``reporter.py``, frames in ``wire.py``); the supervisor reads every pipe in
its loop (``inbox.py``), adds the reports to one set of totals (``totals.py``)
and serves them at ``/metrics`` through one collector (``collector.py``,
``server.py``). One set of totals, added to exactly: no files per process, and
no series that a recycled process leaves behind.
"""
