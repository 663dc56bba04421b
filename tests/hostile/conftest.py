"""The integration suite's fixtures for real ``hurtle worker`` processes, here too."""

from tests.integration.conftest import load_workerapp, marks, worker_env, workers  # noqa: F401
