"""Benchmarks that need a checkout: hurtle beside other task queues, and the brokers' floor.

Not installed with hurtle (only ``src/`` is packaged): run them from the
repository's root, e.g. ``python -m benchmarks.peers noop --broker
redis://127.0.0.1:6379/0 --peers celery,dramatiq`` with ``pip install -e
'.[bench]'``. hurtle's own workloads are ``hurtle bench``; these import its
public pieces from ``hurtle.bench``.
"""
