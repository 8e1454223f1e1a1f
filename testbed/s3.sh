#!/usr/bin/env bash
# testbed/s3.sh — the S3-compatible server of the test bed's "cloud": versitygw (its POSIX
# backend), built from the Go module proxy and cached outside the repository. It checks AWS
# Signature V4 on presigned URLs, their expiry included, as S3 does: the tests fetch with real
# presigned URLs and see real refusals.
#
# Usage: testbed/s3.sh      build or reuse the binary; print its path on the last line
#
# Variables:
#   XDG_CACHE_HOME            cache root (default ~/.cache); the binary is
#                             forklift/versitygw-v1.8.0/versitygw under it
#   GOPROXY, GOMODCACHE, GOCACHE   honoured as usual by the go command
set -euo pipefail

readonly VERSION=v1.8.0
readonly MODULE=github.com/versity/versitygw/cmd/versitygw

info() { printf '[forklift testbed] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift testbed] ERROR: %s\n' "$*" >&2
    exit 1
}

main() {
    local dir=${XDG_CACHE_HOME:-$HOME/.cache}/forklift/versitygw-$VERSION
    if [ -x "$dir/versitygw" ] && "$dir/versitygw" --version >/dev/null 2>&1; then
        echo "$dir/versitygw"
        return 0
    fi
    command -v go >/dev/null || fatal "go is needed to build versitygw $VERSION (the test bed's S3 server)"
    info "building versitygw $VERSION from the Go module proxy (a few minutes, once)"
    mkdir -p "$dir"
    # (GOFLAGS=-modcacherw: the module cache stays removable)
    GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-modcacherw GOTOOLCHAIN=local go install "$MODULE@$VERSION" ||
        fatal "go install $MODULE@$VERSION failed (see above)"
    echo "$dir/versitygw"
}

main "$@"
