#!/usr/bin/env bash
# Install what bench/run.py needs: wrk and libev-dev (apt, when root and missing) and the peer
# servers plus Django and WhiteNoise into a venv (nginx for bench/static.py comes from apt).
#
#   bench/setup.sh [VENV]      # VENV defaults to $VIRTUAL_ENV
#
# Corral itself is not installed here: `pip install .` from the repository root (not -e:
# an editable install is pure Python, slower than what users get; see README, Dependencies).
set -euo pipefail

venv="${1:-${VIRTUAL_ENV:-}}"
if [[ -z "$venv" || ! -x "$venv/bin/pip" ]]; then
    echo "usage: $0 VENV   (a venv with bin/pip; or activate one)" >&2
    exit 2
fi

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
dpkg -s libev-dev >/dev/null 2>&1 || missing+=(libev-dev)        # bjoern builds against libev
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)                  # bench/static.py

if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "missing system packages: ${missing[*]}" >&2
        echo "install them as root: apt-get install -y ${missing[*]}" >&2
    fi
fi

"$venv/bin/pip" install gunicorn waitress granian bjoern django whitenoise   # whitenoise: bench/static.py
