"""The worker: a supervisor forks long-lived processes, each one event loop."""
