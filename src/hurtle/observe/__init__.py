"""What a deployment is doing, seen from outside its workers: the worker registry
(``registry``, ``heartbeat``), the task history (``task_figures`` counted in each
process, ``history_sink`` writing it, ``history`` and ``deploys`` reading it), and
the Prometheus metrics each supervisor serves (``metrics``)."""
