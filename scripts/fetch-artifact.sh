#!/usr/bin/env bash
# fetch-artifact.sh — copy a built artifact from the build host into the local content-addressed cache.
#
# Runs on the machine that runs `pulumi up`. The cache is keyed by sha256, so an artifact crosses the
# network from the builder once, however many hosts it goes to and however often `pulumi up` runs.
#
# Usage: fetch-artifact.sh < private-key        (the SSH private key for the build host on stdin)
#
# Variables:
#   FORKLIFT_BUILDER_ADDRESS, FORKLIFT_BUILDER_PORT (default 22), FORKLIFT_BUILDER_USER
#   FORKLIFT_BUILDER_HOST_KEY  the builder's public host key line; empty only with FORKLIFT_INSECURE=1
#   FORKLIFT_INSECURE          1 to skip host key checking (explicit opt-in in the stack config)
#   FORKLIFT_REMOTE_PATH       artifact path on the build host
#   FORKLIFT_SHA256            expected sha256
#   FORKLIFT_CACHE_DIR         local cache directory
#
# Output: the cached file's path on stdout.
set -euo pipefail

info() { printf '[forklift fetch] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift fetch] ERROR: %s\n' "$*" >&2
    exit 1
}

WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT

check_inputs() {
    local var
    for var in FORKLIFT_BUILDER_ADDRESS FORKLIFT_BUILDER_USER FORKLIFT_REMOTE_PATH FORKLIFT_SHA256 FORKLIFT_CACHE_DIR; do
        [ -n "${!var:-}" ] || fatal "$var is not set"
    done
    [[ "$FORKLIFT_SHA256" =~ ^[0-9a-f]{64}$ ]] || fatal "FORKLIFT_SHA256 is not a sha256"
}

cached_ok() {
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$FORKLIFT_SHA256" ]
}

# Writes the key from stdin and a known_hosts pinning the builder into a private temp dir.
prepare_ssh() {
    WORK=$(mktemp -d)
    chmod 0700 "$WORK"
    cat >"$WORK/key"
    chmod 0600 "$WORK/key"
    SSH_OPTS=(-P "${FORKLIFT_BUILDER_PORT:-22}" -o BatchMode=yes -o ConnectTimeout=15)
    # an empty stdin means "use the SSH agent"
    [ ! -s "$WORK/key" ] || SSH_OPTS+=(-i "$WORK/key" -o IdentitiesOnly=yes)
    if [ -n "${FORKLIFT_BUILDER_HOST_KEY:-}" ]; then
        local host=$FORKLIFT_BUILDER_ADDRESS
        [ "${FORKLIFT_BUILDER_PORT:-22}" = 22 ] || host="[$host]:$FORKLIFT_BUILDER_PORT"
        printf '%s %s\n' "$host" "$FORKLIFT_BUILDER_HOST_KEY" >"$WORK/known_hosts"
        SSH_OPTS+=(-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$WORK/known_hosts")
    elif [ "${FORKLIFT_INSECURE:-0}" = 1 ]; then
        SSH_OPTS+=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null)
    else
        fatal "no host key for the build host (set it, or opt in to insecureSkipHostKeyCheck)"
    fi
}

fetch() {
    local dest=$1
    mkdir -p "$FORKLIFT_CACHE_DIR"
    scp "${SSH_OPTS[@]}" "$FORKLIFT_BUILDER_USER@$FORKLIFT_BUILDER_ADDRESS:$FORKLIFT_REMOTE_PATH" "$dest.part" ||
        fatal "could not copy $FORKLIFT_REMOTE_PATH from $FORKLIFT_BUILDER_ADDRESS (if the build host lost its builds, rebuild with \`pulumi up --replace <URN of forklift-fork-build>\`)"
    local got
    got=$(sha256sum "$dest.part" | cut -d' ' -f1)
    [ "$got" = "$FORKLIFT_SHA256" ] || { rm -f "$dest.part"; fatal "fetched artifact has sha256 $got, expected $FORKLIFT_SHA256"; }
    mv -f "$dest.part" "$dest"
    info "cached $(stat -c %s "$dest") bytes as $dest"
}

main() {
    check_inputs
    local dest="$FORKLIFT_CACHE_DIR/$FORKLIFT_SHA256.tgz"
    prepare_ssh
    if cached_ok "$dest"; then
        info "artifact $FORKLIFT_SHA256 already cached"
    else
        fetch "$dest"
    fi
    printf '%s\n' "$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")"
}

main "$@"
