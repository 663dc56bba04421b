"""``hurtle bench``: workloads that time hurtle end to end, and check the work was done.

One module per workload (``noop.py``, ``latency.py``, ``heavyinit.py``,
``ping.py``, ``io.py``; ``workloads.py`` names them), each with its own app and
tasks and a ``run`` function that returns a ``RunResult``; ``io_target.py`` is
what io's tasks talk to (a Redis key, a counting HTTP server) and their one
client per process. ``runner.py`` holds what every
workload shares: a fresh broker, timed enqueueing, a timed ``hurtle worker
--burst`` subprocess, and the per-process run records the tasks write.
``result.py`` is what a run reports: rates only for a run whose work was
verified, problems otherwise; ``report.py`` prints it, ``progress.py`` draws
its bar. The comparison with other task queues reuses these pieces from a
checkout (``benchmarks/`` beside ``src/``), and is not installed.
"""
