#!/usr/bin/env bash
# Run the whole test suite: venv + install, services, ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k redis -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/venv.sh dev,redis,amqp,bench

bash scripts/services.sh

echo "== ruff"
.venv/bin/ruff check src tests
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" || rc=$?
if ((rc == 5)); then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
fi
exit "$rc"
