#!/usr/bin/env bash
# Make .venv (installing Debian's python3-venv first if root and it is missing)
# and install hurtle into it, editable, with the extras given as $1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1

# A failed `python3 -m venv` (no ensurepip on Debian without python3-venv)
# leaves a venv without pip behind, so "missing" means "no pip".
if [[ ! -x .venv/bin/pip ]]; then
    rm -rf .venv
    if ! python3 -m venv .venv; then
        rm -rf .venv
        if [[ $(id -u) != 0 ]]; then
            echo "venv.sh: 'python3 -m venv' failed; install python3-venv (sudo apt-get install python3-venv) and rerun" >&2
            exit 2
        fi
        echo "== installing python3-venv" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi

# Editable installs from pyproject.toml alone (PEP 660) need pip >= 21.3.
if ! .venv/bin/python -c 'import pip, sys
sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (21, 3))'; then
    .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e ".[${1:-uvloop}]"

# pip byte-compiles what it installs from a wheel, but not an editable install's
# source: compile it here, or every process that may not write bytecode
# (PYTHONDONTWRITEBYTECODE) compiles hurtle again at start-up (0.1 s a worker).
.venv/bin/python -m compileall -q src >/dev/null
