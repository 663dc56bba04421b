"""``hurtle demo``: a few thousand tasks through a real worker, and where their time went.

- ``tasks.py``: the demo app and its tasks, a model of an app of your own;
- ``workload.py``: how many of each task a run sends, and sending them;
- ``report.py``: reading the stored results back into the summary tables.

The command itself (temporary broker, worker subprocess, progress bar) is
``hurtle.cli.demo``.
"""
