#!/usr/bin/env bash
# Run the whole test suite: venv + install, services, ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k redis -x`.
#
# `scripts/test.sh --latest [pytest arguments]` runs the same checks in
# .venv-latest, against the newest release of every dependency instead of
# uv.lock's: drift found on purpose, before a fresh install finds it.
#
# Then the broker-facing tests run again in .venv-lowest, against the lowest
# redis-py and aiormq that pyproject.toml allows (about a minute);
# HURTLE_SKIP_LOWEST=1 leaves that step out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv
if [[ ${1:-} == --latest ]]; then
    shift
    venv=.venv-latest
    bash scripts/venv.sh --latest dev,redis,amqp,bench,profile,metrics,dashboard
    echo "== testing against the newest releases:"
    "$venv/bin/uv" pip list --python "$venv/bin/python" 2>/dev/null | grep -iE '^(redis|hiredis|aiormq|aio-pika|msgspec|click|rich|uvloop|pytest|mypy|ruff) '
else
    bash scripts/venv.sh dev,redis,amqp,bench,profile,metrics,dashboard
fi

bash scripts/services.sh
bash scripts/browser.sh

echo "== ruff"
"$venv/bin/ruff" check src tests benchmarks
echo "== mypy"
"$venv/bin/mypy"
# benchmarks/ (not installed) imports the peers: checked only where the bench extra put them.
if "$venv/bin/python" -c "import celery, dramatiq, rq, arq, huey, taskiq, taskiq_redis, gevent" 2>/dev/null; then
    echo "== mypy benchmarks"
    "$venv/bin/mypy" benchmarks
fi
echo "== pytest"
rc=0
# Spread over 4 processes (the tests mostly wait on brokers and workers, not on a
# CPU), benchmarks kept to one of them (their xdist_group); the slowest tests are
# listed: the whole run must stay under 15 minutes.
"$venv/bin/python" -m pytest -q -p no:cacheprovider -n "${HURTLE_TEST_PROCESSES:-4}" --dist loadgroup \
    --durations=15 "$@" || rc=$?
if ((rc == 5)); then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
fi
if ((rc != 0)) || [[ $venv == .venv-latest || ${HURTLE_SKIP_LOWEST:-} == 1 ]]; then
    exit "$rc"
fi

# The adapters to redis-py's and aiormq's internals, at the other end of their bounds.
bash scripts/venv.sh --lowest dev,redis,amqp
echo "== pytest, lowest redis-py and aiormq:"
.venv-lowest/bin/uv pip list --python .venv-lowest/bin/python 2>/dev/null | grep -iE '^(redis|hiredis|aiormq) '
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider tests/contract tests/integration/test_redis_broker.py \
    tests/integration/test_amqp_broker.py tests/unit/test_redis_compat.py tests/unit/test_amqp_compat.py
