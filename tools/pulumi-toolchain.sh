#!/usr/bin/env bash
# pulumi-toolchain.sh — build forklift's offline Pulumi toolchain from Go modules.
#
# Usage:
#   tools/pulumi-toolchain.sh [all]   build/reuse the pulumi CLI, pulumi-language-nodejs and
#                                     pulumi-resource-command; print the PATH line on success
#   tools/pulumi-toolchain.sh cli     build/reuse the pulumi CLI only; print its PATH line
#   tools/pulumi-toolchain.sh -h      this help
#
#   eval "$(tools/pulumi-toolchain.sh | grep '^export PATH=')"
#
# Nothing is written inside the repository. Each program is compiled from a throwaway
# wrapper Go module in a temp directory and installed under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/forklift/toolchain/
#     pulumi-v3.276.0/bin/pulumi                   (+ pulumi-language-nodejs next to it)
#     pulumi-resource-command-v1.2.1/bin/pulumi-resource-command
# Binaries are built to a temp name in the target directory and renamed into place (atomic).
# An existing binary that reports the expected version is reused (fast path, no Go needed).
#
# The language host and the command provider are fetched the same way. When the Go module
# proxy refuses a module, the script exits non-zero, names the module and quotes the proxy's
# error line: CI must fail loudly rather than skip the end-to-end tests.
#
# Variables (all optional):
#   XDG_CACHE_HOME                     base of the cache directory (default $HOME/.cache)
#   FORKLIFT_TOOLCHAIN_DIR             toolchain root (default $XDG_CACHE_HOME/forklift/toolchain)
#   FORKLIFT_TOOLCHAIN_REBUILD=1       ignore existing binaries and rebuild
#   FORKLIFT_LANGUAGE_NODEJS_REF       version/commit of the language-host module to fetch
#                                      (default: commit behind pkg/v3.276.0 if the proxy's
#                                      .info reports it; otherwise the module's version list)
#   FORKLIFT_COMMAND_MODULE_VERSION    pseudo-version of github.com/pulumi/pulumi-command/provider
#                                      (default v0.0.0-20260303235922-7f3eb6f3b77c = tag v1.2.1)
#   FORKLIFT_GOSUMDB                   checksum database to use (default: off, see below)
#   CGO_ENABLED                        default 0 (static binaries, like upstream releases)
#   GOPROXY, GOMODCACHE, GOCACHE       honoured as usual by the go command
#
# Exit status: 0 = everything present (PATH line on stdout); 1 = something could not be built or
# fetched (module and proxy error on stderr); 2 = bad usage.
#
# Requirements: bash, go >= 1.26.6 (GOTOOLCHAIN=local: no toolchain download).

set -euo pipefail

readonly PULUMI_VERSION="3.276.0"            # keep equal to @pulumi/pulumi in package-lock.json
readonly COMMAND_VERSION="1.2.1"             # keep equal to @pulumi/command in package-lock.json
readonly PULUMI_PKG_MODULE="github.com/pulumi/pulumi/pkg/v3"
readonly PULUMI_SDK_MODULE="github.com/pulumi/pulumi/sdk/v3"
readonly LANGUAGE_NODEJS_MODULE="github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3"
readonly COMMAND_MODULE="github.com/pulumi/pulumi-command/provider"
readonly COMMAND_MODULE_VERSION="${FORKLIFT_COMMAND_MODULE_VERSION:-v0.0.0-20260303235922-7f3eb6f3b77c}"

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
readonly COMMAND_BIN="$TOOLCHAIN_DIR/pulumi-resource-command-v$COMMAND_VERSION/bin"

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

# The language host module has no tags of its own: it is addressed by the commit behind the
# pkg/v3.x.y tag. The proxy's .info for pkg/v3 carries that commit only if it reports Origin.
language_nodejs_ref() {
  local dir=$1 hash
  if [[ -n ${FORKLIFT_LANGUAGE_NODEJS_REF:-} ]]; then
    printf '%s\n' "$FORKLIFT_LANGUAGE_NODEJS_REF"
    return
  fi
  hash=$(cd "$dir" && gocmd mod download -json "$PULUMI_PKG_MODULE@v$PULUMI_VERSION" 2>/dev/null |
    sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]\{12,40\}\)".*/\1/p' | head -n1) || true
  if [[ -n $hash ]]; then
    printf '%s\n' "$hash"
  else
    printf 'latest\n'   # only to make the proxy say whether it serves the module at all
  fi
}

build_language_nodejs() {
  local target="$PULUMI_BIN/pulumi-language-nodejs" dir ref
  if have_binary "$target" "$PULUMI_VERSION" -version; then
    log "reusing $target"
    return
  fi
  ensure_go
  new_wrapper language-nodejs \
    "$PULUMI_PKG_MODULE v$PULUMI_VERSION" "$PULUMI_SDK_MODULE v$PULUMI_VERSION" -- \
    "${PULUMI_REPLACES[@]}" || return 1
  dir=$WRAPPER_DIR
  ref=$(language_nodejs_ref "$dir") || return 1
  fetch_module "$dir" "$LANGUAGE_NODEJS_MODULE" "$ref" || return 1
  if [[ $ref == latest ]]; then
    log "ERROR: $LANGUAGE_NODEJS_MODULE is served, but the commit behind pkg/v$PULUMI_VERSION is unknown: set FORKLIFT_LANGUAGE_NODEJS_REF"
    return 1
  fi
  (cd "$dir" && gocmd get "$LANGUAGE_NODEJS_MODULE@$ref") || return 1
  install_binary "$dir" "$LANGUAGE_NODEJS_MODULE" \
    "-s -w -X $PULUMI_SDK_MODULE/go/common/version.Version=v$PULUMI_VERSION" "$target"
}

build_command_provider() {
  local target="$COMMAND_BIN/pulumi-resource-command" dir
  if have_binary "$target" "$COMMAND_VERSION" -version; then
    log "reusing $target"
    return
  fi
  ensure_go
  new_wrapper command-provider "$COMMAND_MODULE $COMMAND_MODULE_VERSION" -- || return 1
  dir=$WRAPPER_DIR
  fetch_module "$dir" "$COMMAND_MODULE" "$COMMAND_MODULE_VERSION" || return 1
  install_binary "$dir" "$COMMAND_MODULE/cmd/pulumi-resource-command" \
    "-s -w -X $COMMAND_MODULE/pkg/version.Version=$COMMAND_VERSION" "$target"
}

# print_path <dir>...: the line CI evaluates; $PATH stays literal on purpose.
print_path() {
  local IFS=:
  # shellcheck disable=SC2016
  printf 'export PATH="%s:$PATH"\n' "$*"
}

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

main() {
  local mode=${1:-all} failed=()
  case $mode in
    -h | --help) usage; return 0 ;;
    all | cli) ;;
    *) usage >&2; return 2 ;;
  esac

  # Checklist:
  # 1. pulumi CLI v3.276.0 (reuse or build)
  build_pulumi_cli || die "could not build the pulumi CLI v$PULUMI_VERSION (see above)"
  if [[ $mode == cli ]]; then
    print_path "$PULUMI_BIN"
    return 0
  fi
  # 2. pulumi-language-nodejs for v3.276.0, next to the CLI
  build_language_nodejs || failed+=("pulumi-language-nodejs ($LANGUAGE_NODEJS_MODULE)")
  # 3. pulumi-resource-command 1.2.1
  build_command_provider || failed+=("pulumi-resource-command $COMMAND_VERSION ($COMMAND_MODULE@$COMMAND_MODULE_VERSION)")
  # 4. fail loudly (never skip) if anything is missing; otherwise the PATH line for CI
  if ((${#failed[@]})); then
    log "ERROR: no offline route to: ${failed[*]}"
    log "ERROR: the toolchain is incomplete; only the pulumi CLI is in $PULUMI_BIN"
    return 1
  fi
  print_path "$PULUMI_BIN" "$COMMAND_BIN"
}

main "$@"
