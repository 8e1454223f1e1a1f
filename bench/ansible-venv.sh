#!/usr/bin/env bash
# ansible-venv.sh — the Ansible the benchmark compares forklift with: ansible-core from PyPI in a
# venv cached outside the repository (made once per machine, reused after). Prints the venv's bin
# directory on its last line.
#
# Variables:
#   FORKLIFT_BENCH_ANSIBLE_CORE   pip requirement (default ansible-core==2.18.*; 2.18 is the last
#                                 series that runs on Python 3.11, Debian 12's)
#   FORKLIFT_BENCH_PYTHON         Python for the venv (default python3)
#   XDG_CACHE_HOME                cache root (default ~/.cache); the venv is forklift/bench-venv
set -euo pipefail

info() { printf '[forklift bench] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift bench] ERROR: %s\n' "$*" >&2
    exit 1
}

REQUIREMENT=${FORKLIFT_BENCH_ANSIBLE_CORE:-ansible-core==2.18.*}
PYTHON=${FORKLIFT_BENCH_PYTHON:-python3}
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/forklift/bench-venv
STAMP="$VENV/.forklift-requirement"

# The venv, made anew when it is missing, broken or for another requirement.
ensure_venv() {
    if [ -x "$VENV/bin/ansible-playbook" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$REQUIREMENT" ] &&
        "$VENV/bin/ansible-playbook" --version >/dev/null 2>&1; then
        return 0
    fi
    command -v "$PYTHON" >/dev/null || fatal "no $PYTHON to make the Ansible venv with"
    info "installing $REQUIREMENT from PyPI into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || fatal "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$REQUIREMENT" || fatal "pip install $REQUIREMENT failed"
    printf '%s' "$REQUIREMENT" >"$STAMP"
}

ensure_venv
version=$("$VENV/bin/ansible-playbook" --version)
info "${version%%$'\n'*}"
echo "$VENV/bin"
