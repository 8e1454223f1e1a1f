#!/usr/bin/env bash
# testbed/buildx.sh: build (once) the real docker buildx CLI plugin from the Go module proxy, for
# test build hosts. Debian 12 (the test host image) has no docker-buildx package; copying this
# binary to /usr/libexec/docker/cli-plugins/docker-buildx in a test host makes it look like an
# Ubuntu 24.04 build host that has docker-buildx installed.
#
# Usage:
#   testbed/buildx.sh        # build if needed; print the path of the docker-buildx binary on stdout
#
# The binary is cached OUTSIDE the repository at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/forklift/buildx-<version>/docker-buildx
# and reused while it reports that version. It is `go install`ed from
# github.com/docker/buildx/cmd/buildx@<version> (static: CGO_ENABLED=0; no toolchain download:
# GOTOOLCHAIN=local; the dependency versions and checksums of buildx's own go.mod/go.sum) into a
# temporary directory next to the cache entry and moved into place when complete.
#
# Environment variables read:
#   FORKLIFT_BUILDX_VERSION  buildx module version (default v0.37.1, the newest release whose go.mod
#                            asks for no more than Go 1.26.6, the test bed's minimum)
#   FORKLIFT_BUILDX_REBUILD  1 = ignore a cached binary and build again (default 0)
#   XDG_CACHE_HOME, HOME     cache root (default $HOME/.cache)
#   GOPROXY, GOMODCACHE, GOCACHE, GOSUMDB, GONOSUMDB   honoured as usual by the go command
#
# Requirements: go >= the version buildx's go.mod names (1.26.3 for v0.37.1), network access to
# the module proxy on the first run. Exit status: 0 = the path is on stdout; 1 = failure.
set -euo pipefail

readonly MODULE=github.com/docker/buildx
readonly VERSION="${FORKLIFT_BUILDX_VERSION:-v0.37.1}"
readonly CACHE_DIR="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/forklift/buildx-$VERSION"
readonly TARGET="$CACHE_DIR/docker-buildx"
WORK_DIR=""
REVISION=""

# --- helpers -----------------------------------------------------------------
info() { echo '[INFO] ' "$@" >&2; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() {
    echo '[ERROR] ' "$@" >&2
    exit 1
}

cleanup() {
    [ -n "$WORK_DIR" ] || return 0
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# The go command as every step here runs it: no toolchain switch, static, go.mod resolution allowed.
gocmd() {
    env GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" go "$@"
}

# --- steps -------------------------------------------------------------------
verify_system() {
    [[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fatal "FORKLIFT_BUILDX_VERSION must look like v0.37.1 (got '$VERSION')"
    command -v go >/dev/null 2>&1 || fatal "go not found on PATH (needed once to build docker-buildx $VERSION)"
}

# True when the cached binary is there and reports the wanted version.
cached() {
    [ "${FORKLIFT_BUILDX_REBUILD:-0}" != 1 ] || return 1
    [ -x "$TARGET" ] || return 1
    [[ "$("$TARGET" version 2>/dev/null || true)" == *" $VERSION "* ]]
}

# Fetches the module through the proxy; sets REVISION to its commit (for `docker buildx version`).
# The checksum database is used where it answers (the proxy relays it). Where it does not, only
# the buildx module itself is taken unverified (GONOSUMDB=$MODULE): its dependencies are still
# checked against buildx's own go.sum.
fetch_module() {
    local json
    if ! json=$(cd "$WORK_DIR" && gocmd mod download -json "$MODULE@$VERSION" 2>&1); then
        case "$json" in
            *"verifying"* | *"sumdb"* | *"checksum database"*)
                warn "the Go checksum database is unreachable; taking $MODULE@$VERSION unverified (GONOSUMDB=$MODULE)"
                export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}$MODULE"
                json=$(cd "$WORK_DIR" && gocmd mod download -json "$MODULE@$VERSION" 2>&1) ||
                    fatal "cannot fetch $MODULE@$VERSION (GOPROXY=$(go env GOPROXY)):"$'\n'"$json"
                ;;
            *) fatal "cannot fetch $MODULE@$VERSION (GOPROXY=$(go env GOPROXY)):"$'\n'"$json" ;;
        esac
    fi
    REVISION=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]\{7,40\}\)".*/\1/p' | head -n 1)
}

build() {
    local start tmp_bin
    mkdir -p "$CACHE_DIR"
    WORK_DIR=$(mktemp -d "$CACHE_DIR/.build.XXXXXX")
    start=$SECONDS
    fetch_module
    info "building docker-buildx $VERSION${REVISION:+ ($REVISION)} with $(go env GOVERSION); a few minutes on a small machine"
    (cd "$WORK_DIR" && GOBIN="$WORK_DIR/bin" gocmd install -trimpath -ldflags "-s -w \
        -X $MODULE/version.Version=$VERSION -X $MODULE/version.Revision=${REVISION:-unknown} \
        -X $MODULE/version.Package=$MODULE" "$MODULE/cmd/buildx@$VERSION" >&2) ||
        fatal "go install $MODULE/cmd/buildx@$VERSION failed"
    tmp_bin="$CACHE_DIR/.docker-buildx.tmp.$$"
    mv -f "$WORK_DIR/bin/buildx" "$tmp_bin"
    [[ "$("$tmp_bin" version 2>&1 || true)" == *" $VERSION "* ]] ||
        { rm -f "$tmp_bin"; fatal "the built docker-buildx does not report $VERSION"; }
    mv -f "$tmp_bin" "$TARGET"
    info "built $TARGET in $((SECONDS - start))s"
}

# --- main --------------------------------------------------------------------
main() {
    verify_system
    if cached; then
        info "reusing $TARGET"
    else
        build
    fi
    echo "$TARGET"
}

main "$@"
