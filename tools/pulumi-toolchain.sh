#!/usr/bin/env bash
# pulumi-toolchain.sh — build forklift's offline pulumi CLI from Go modules.
#
# Usage:
#   tools/pulumi-toolchain.sh [cli]   build/reuse the pulumi CLI; print its PATH line
#   tools/pulumi-toolchain.sh -h      this help
#
#   eval "$(tools/pulumi-toolchain.sh cli | grep '^export PATH=')"
#
# Nothing is written inside the repository. The CLI is compiled from a throwaway wrapper Go
# module in a temp directory and installed under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/forklift/toolchain/pulumi-v3.276.0/bin/pulumi
# It is built to a temp name in the target directory and renamed into place (atomic). An
# existing binary that reports the expected version is reused (fast path, no Go needed).
#
# When the Go module proxy refuses a module, the script exits non-zero, names the module and
# quotes the proxy's error line: CI must fail loudly rather than skip the engine tests.
#
# Variables (all optional):
#   XDG_CACHE_HOME                     base of the cache directory (default $HOME/.cache)
#   FORKLIFT_TOOLCHAIN_DIR             toolchain root (default $XDG_CACHE_HOME/forklift/toolchain)
#   FORKLIFT_TOOLCHAIN_REBUILD=1       ignore existing binaries and rebuild
#   FORKLIFT_GOSUMDB                   checksum database to use (default: off, see below)
#   CGO_ENABLED                        default 0 (static binaries, like upstream releases)
#   GOPROXY, GOMODCACHE, GOCACHE       honoured as usual by the go command
#
# Exit status: 0 = the CLI is present (PATH line on stdout); 1 = it could not be built or
# fetched (module and proxy error on stderr); 2 = bad usage.
#
# Requirements: bash, go >= 1.26.6 (GOTOOLCHAIN=local: no toolchain download).

set -euo pipefail

readonly PULUMI_VERSION="3.276.0"            # keep equal to @pulumi/pulumi in package-lock.json
readonly PULUMI_PKG_MODULE="github.com/pulumi/pulumi/pkg/v3"
readonly PULUMI_SDK_MODULE="github.com/pulumi/pulumi/sdk/v3"

# The non-local replace directives of pkg/go.mod and sdk/go.mod at v3.276.0. Replace directives
# of dependencies are ignored by Go, so the wrapper module has to repeat them (upstream builds
# get them from the repository's go.work). The local one (sdk/v3 => ../sdk) becomes a plain
# requirement of sdk/v3 at the same version.
readonly PULUMI_REPLACES=(
  "github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
  "golang.org/x/text => golang.org/x/text v0.41.0"
)

readonly TOOLCHAIN_DIR="${FORKLIFT_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/forklift/toolchain}"
readonly PULUMI_BIN="$TOOLCHAIN_DIR/pulumi-v$PULUMI_VERSION/bin"

WORK_DIRS=()
WRAPPER_DIR=
cleanup() {
  local d
  for d in "${WORK_DIRS[@]+"${WORK_DIRS[@]}"}"; do
    # Module-cache files are read-only; make them removable before deleting the temp tree.
    chmod -R u+w "$d" 2>/dev/null || true
    rm -rf "$d"
  done
}
trap cleanup EXIT

log() { printf 'pulumi-toolchain: %s\n' "$*" >&2; }
die() { printf 'pulumi-toolchain: ERROR: %s\n' "$*" >&2; exit 1; }

# Run the go command for these modules.
# GOSUMDB=off: the Go checksum database is not reachable from this network, so
# go.sum entries of the throwaway wrapper module are taken from the module proxy unverified
# (GOFLAGS=-mod=mod lets `go build` write them). Set FORKLIFT_GOSUMDB to the checksum database's
# name where it is reachable. GOWORK=off keeps any go.work out of the wrapper build. CGO_ENABLED=0 (overridable)
# gives static binaries, as upstream's release builds are.
gocmd() {
  env GOSUMDB="${FORKLIFT_GOSUMDB:-off}" GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" \
    GOTOOLCHAIN=local GOWORK=off CGO_ENABLED="${CGO_ENABLED:-0}" go "$@"
}

# new_wrapper <name> <require "mod ver">... -- <replace "old => new ver">...
# Creates a wrapper module in a fresh temp dir (removed on exit) and sets WRAPPER_DIR to it.
# Not meant for $(...): the temp dir must be registered in this shell for the cleanup.
new_wrapper() {
  local name=$1 line
  shift
  WRAPPER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/forklift-toolchain-$name.XXXXXX") || return 1
  WORK_DIRS+=("$WRAPPER_DIR")
  {
    printf 'module forklift.invalid/toolchain/%s\n\ngo 1.26.6\n\n' "$name"
    while (($#)) && [[ $1 != -- ]]; do
      printf 'require %s\n' "$1"
      shift
    done
    (($#)) && shift
    for line in "$@"; do
      printf 'replace %s\n' "$line"
    done
  } >"$WRAPPER_DIR/go.mod" || return 1
}

# fetch_module <wrapper-dir> <module> <version-or-query>
# Downloads one module through the proxy. On refusal prints the module and the proxy's error
# lines verbatim and returns 1.
fetch_module() {
  local dir=$1 module=$2 query=$3 err
  if ! err=$(cd "$dir" && gocmd mod download "$module@$query" 2>&1 >/dev/null); then
    {
      printf 'pulumi-toolchain: ERROR: cannot obtain Go module %s@%s\n' "$module" "$query"
      printf 'pulumi-toolchain: GOPROXY=%s said:\n' "$(go env GOPROXY)"
      printf '%s\n' "$err" | sed 's/^/    /'
    } >&2
    return 1
  fi
}

# install_binary <wrapper-dir> <main-package> <ldflags> <target-path>
install_binary() {
  local dir=$1 pkg=$2 ldflags=$3 target=$4 tmp start
  mkdir -p "$(dirname "$target")" || return 1
  tmp="$(dirname "$target")/.$(basename "$target").tmp.$$"
  start=$SECONDS
  log "building $pkg (this takes a while on a small machine)"
  if ! (cd "$dir" && gocmd build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    log "ERROR: go build of $pkg failed"
    return 1
  fi
  mv -f "$tmp" "$target" || return 1
  log "installed $target ($((SECONDS - start))s)"
}

# have_binary <path> <expected version string> <version command...>
have_binary() {
  local path=$1 want=$2 got
  shift 2
  [[ ${FORKLIFT_TOOLCHAIN_REBUILD:-0} != 1 && -x $path ]] || return 1
  got=$("$path" "$@" 2>/dev/null || true)
  [[ $got == *"$want"* ]]
}

ensure_go() {
  command -v go >/dev/null 2>&1 || die "go not found on PATH (Go >= 1.26.6 is needed to build the toolchain)"
}

build_pulumi_cli() {
  local target="$PULUMI_BIN/pulumi" dir
  if have_binary "$target" "v$PULUMI_VERSION" version; then
    log "reusing $target"
    return
  fi
  ensure_go
  new_wrapper pulumi \
    "$PULUMI_PKG_MODULE v$PULUMI_VERSION" "$PULUMI_SDK_MODULE v$PULUMI_VERSION" -- \
    "${PULUMI_REPLACES[@]}" || return 1
  dir=$WRAPPER_DIR
  fetch_module "$dir" "$PULUMI_PKG_MODULE" "v$PULUMI_VERSION" || return 1
  fetch_module "$dir" "$PULUMI_SDK_MODULE" "v$PULUMI_VERSION" || return 1
  install_binary "$dir" "$PULUMI_PKG_MODULE/cmd/pulumi" \
    "-s -w -X $PULUMI_SDK_MODULE/go/common/version.Version=v$PULUMI_VERSION" "$target"
}

# print_path <dir>...: the line CI evaluates; $PATH stays literal on purpose.
print_path() {
  local IFS=:
  # shellcheck disable=SC2016
  printf 'export PATH="%s:$PATH"\n' "$*"
}

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

main() {
  local mode=${1:-cli}
  case $mode in
    -h | --help) usage; return 0 ;;
    cli) ;;
    *) usage >&2; return 2 ;;
  esac
  build_pulumi_cli || die "could not build the pulumi CLI v$PULUMI_VERSION (see above)"
  print_path "$PULUMI_BIN"
}

main "$@"
