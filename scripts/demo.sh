#!/usr/bin/env bash
# The first command of the README: install hurtle in .venv and run `hurtle demo`
# on the embedded SQLite broker (no server needed). Arguments go to `hurtle demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/venv.sh uvloop
exec .venv/bin/hurtle demo "$@"
