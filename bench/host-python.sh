#!/usr/bin/env bash
# host-python.sh — Python 3 for the benchmark's test hosts, which Ansible's modules need and the
# test bed's minimal image lacks (the hosts reach no package mirror). Takes the Debian packages
# that `python3` needs and the host has not (its `dpkg-query -W` list on stdin), downloads them
# with this machine's apt, unpacks them into one tarball to extract at the host's root, and prints
# the tarball's path. Cached by package set under ${XDG_CACHE_HOME:-~/.cache}/forklift/.
set -euo pipefail

info() { printf '[forklift bench] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift bench] ERROR: %s\n' "$*" >&2
    exit 1
}

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/forklift
WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# python3 and its whole dependency closure (alternatives and virtual packages left out).
python_closure() {
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances python3 |
        grep '^[a-z0-9]' | sort -u
}

main() {
    command -v apt-get >/dev/null || fatal "this needs Debian's apt to fetch Python for the test hosts"
    local installed missing key tarball pkg
    installed=$(cut -f1 | sed 's/:.*//' | sort -u)
    missing=$(comm -23 <(python_closure) <(printf '%s\n' "$installed"))
    [ -n "$missing" ] || fatal "apt knows no python3 (run apt-get update) or the host has it already"
    key=$(printf '%s\n' "$missing" | sha256sum | cut -c1-16)
    tarball="$CACHE/bench-host-python-$key.tar.gz"
    if [ ! -f "$tarball" ]; then
        info "fetching Python for the test hosts: $(tr '\n' ' ' <<<"$missing")"
        WORK=$(mktemp -d)
        chmod 0755 "$WORK" # apt's download user must write there
        # shellcheck disable=SC2086 # one package name per word
        (cd "$WORK" && apt-get download $missing >/dev/null) || fatal "apt-get download failed (apt-get update first?)"
        mkdir -p "$WORK/root"
        for pkg in "$WORK"/*.deb; do dpkg-deb -x "$pkg" "$WORK/root"; done
        mkdir -p "$CACHE"
        tar -C "$WORK/root" -czf "$tarball.tmp" .
        mv -f "$tarball.tmp" "$tarball"
    fi
    echo "$tarball"
}

main "$@"
