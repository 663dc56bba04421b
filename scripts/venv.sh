#!/usr/bin/env bash
# Make .venv (installing Debian's python3-venv first if root and it is missing)
# and install hurtle into it, editable, with the extras given as $1 (default
# uvloop), at exactly the versions uv.lock records: what main was tested with.
#
# `venv.sh --latest EXTRAS` makes .venv-latest instead, with the newest release
# of every dependency that pyproject.toml allows, the lock left aside: how
# `scripts/test.sh --latest` finds what a fresh install next month would break.
#
# `venv.sh --lowest EXTRAS` makes .venv-lowest: uv.lock's versions, but for the
# lowest redis-py and aiormq that pyproject.toml allows (the newest patch of that
# minor release), whose internals the broker's compat modules use too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The uv that wrote uv.lock; a newer one may write the lock anew.
UV_VERSION=0.13.9

latest=false
lowest=false
if [[ ${1:-} == --latest ]]; then
    latest=true
    shift
elif [[ ${1:-} == --lowest ]]; then
    lowest=true
    shift
fi
extras=${1:-uvloop}
venv=.venv
if $latest; then
    venv=.venv-latest
elif $lowest; then
    venv=.venv-lowest
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
# uv installs into the venv's own Python and never downloads another.
export UV_PYTHON_DOWNLOADS=never

# A failed `python3 -m venv` (no ensurepip on Debian without python3-venv)
# leaves a venv without pip behind, so "missing" means "no pip".
if [[ ! -x $venv/bin/pip ]]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
        rm -rf "$venv"
        if [[ $(id -u) != 0 ]]; then
            echo "venv.sh: 'python3 -m venv' failed; install python3-venv (sudo apt-get install python3-venv) and rerun" >&2
            exit 2
        fi
        echo "== installing python3-venv" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
fi

# uv itself, pinned, into the venv; `sync --inexact` below leaves it there.
if [[ $("$venv/bin/uv" --version 2>/dev/null) != "uv $UV_VERSION "* ]]; then
    "$venv/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
uv=$venv/bin/uv

if $latest; then
    "$uv" pip install -q --python "$venv/bin/python" --upgrade --compile-bytecode -e ".[$extras]"
else
    extra_flags=()
    IFS=, read -ra names <<<"$extras"
    for name in "${names[@]}"; do
        extra_flags+=(--extra "$name")
    done
    # --locked: a pyproject.toml changed without `uv lock` is an error, not a silent
    # resolve. --inexact: what another set of extras installed stays (the demo's
    # venv.sh and the tests' share .venv).
    if ! UV_PROJECT_ENVIRONMENT=$venv "$uv" sync -q --locked --inexact --compile-bytecode "${extra_flags[@]}"; then
        echo "venv.sh: installing from uv.lock failed; if pyproject.toml changed, run '$uv lock' and commit uv.lock" >&2
        exit 1
    fi
fi

if $lowest; then
    # The lower bounds as pyproject.toml writes them (">=6.2,<9"), as "==6.2.*".
    pins=$("$venv/bin/python" - <<'PY'
import re
text = open("pyproject.toml").read()
for requirement in ("redis[hiredis]", "aiormq"):
    low = re.search(re.escape(f'"{requirement}>=') + r'([0-9.]+)[^;"]*(;[^"]*)?"', text)
    if low is None:
        raise SystemExit(f"venv.sh: no lower bound for {requirement} in pyproject.toml")
    print(f"{requirement}=={low.group(1)}.*{low.group(2) or ''}")  # with its marker (python_version)
PY
    )
    mapfile -t pins <<<"$pins"
    "$uv" pip install -q --python "$venv/bin/python" --compile-bytecode "${pins[@]}"
fi

# Wheels are byte-compiled as they are installed (--compile-bytecode), but not an
# editable install's source: compile it here, or every process that may not
# write bytecode (PYTHONDONTWRITEBYTECODE) compiles hurtle again at start-up
# (0.1 s a worker).
"$venv/bin/python" -m compileall -q src >/dev/null
