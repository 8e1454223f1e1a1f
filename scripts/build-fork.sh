#!/usr/bin/env bash
# build-fork.sh — build a Docker fork into a static docker-<version>.tgz on the build host.
#
# Usage:
#   build-fork.sh build    start the build detached (or join/reuse one with the same key), wait, print result JSON
#   build-fork.sh run DIR  the detached build itself (started by `build`; not for direct use)
#
# The build runs as a transient systemd unit (or a setsid'd process where systemd is not PID 1), so
# a dropped SSH connection does not kill it: the next `build` with the same key joins the running
# build, or reuses its finished result.
#
# Variables (build):
#   FORKLIFT_BUILD_KEY        hash of every input (recipe, repos, refs, version, make vars, this script)
#   FORKLIFT_RECIPE           docker-ce | docker-ce-packaging | moby
#   FORKLIFT_REPO, FORKLIFT_REF            the fork (docker-ce monorepo, moby engine, or moby)
#   FORKLIFT_CLI_REPO, FORKLIFT_CLI_REF    docker-ce-packaging only: a docker/cli fork (optional)
#   FORKLIFT_PACKAGING_REPO, FORKLIFT_PACKAGING_REF   docker-ce-packaging only
#   FORKLIFT_VERSION          version to stamp (VERSION= for docker-ce-packaging); optional
#   FORKLIFT_MAKE_VARS_B64    base64 of extra make variables, one NAME=value per line; optional
#   FORKLIFT_BUILD_ROOT       work directory (default /var/lib/forklift-build)
#   FORKLIFT_BUILD_TIMEOUT    seconds to wait for the build (default 10800)
#   FORKLIFT_BUILD_KEEP       finished builds kept under the build root (default 3); older ones are
#                             removed after each successful build
#   FORKLIFT_BUILD_FRESH      seconds a build stays, whatever FORKLIFT_BUILD_KEEP says, after it was
#                             made or reused (default 3600): the check of its stack fetches it next
#   FORKLIFT_BUILD_PROGRESS   seconds between the progress lines of a running build (default 10)
#
# Output (stdout, one JSON line): artifact, sha256, size, version, commit, cliCommit, binaries, recipe,
# buildKey, provenance (what was built from what, and with which toolchain).
#
# Same inputs, same bytes: the artifact depends on the fork's inputs only (recipe, repositories,
# resolved commits, version, make variables), never on this script, the build host or the clock.
# Every recipe runs with SOURCE_DATE_EPOCH set to the fork commit's time; the engine's and the
# cli's Dockerfile (moby, docker-ce-packaging) get it declared in their build stage, where buildx
# passes it as a build argument (see declare_source_date_epoch); the tgz is repacked with fixed
# names, owners, order and times. docker/FORKLIFT-BUILD-INFO inside it records the inputs; the
# result's provenance adds the toolchain. The artifact is linked as artifacts/<sha256>.tgz under
# the build root, so its path is the same for every build that gives those bytes.
set -euo pipefail
# the recipes call helpers inside $(...): a failing step there must stop the build too
shopt -s inherit_errexit

BUILD_ROOT=${FORKLIFT_BUILD_ROOT:-/var/lib/forklift-build}
BUILD_TIMEOUT=${FORKLIFT_BUILD_TIMEOUT:-10800}
BUILD_KEEP=${FORKLIFT_BUILD_KEEP:-3}
BUILD_FRESH=${FORKLIFT_BUILD_FRESH:-3600}
readonly ENV_VARS="FORKLIFT_BUILD_KEY FORKLIFT_RECIPE FORKLIFT_REPO FORKLIFT_REF FORKLIFT_CLI_REPO FORKLIFT_CLI_REF FORKLIFT_PACKAGING_REPO FORKLIFT_PACKAGING_REF FORKLIFT_VERSION FORKLIFT_MAKE_VARS_B64"

info() { printf '[forklift build] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift build] ERROR: %s\n' "$*" >&2
    exit 1
}

# ---- build: the part that runs over SSH ----

# Checks the inputs before anything is started.
check_inputs() {
    [[ "${FORKLIFT_BUILD_KEY:-}" =~ ^[0-9a-f]{12,64}$ ]] || fatal "FORKLIFT_BUILD_KEY must be a hex hash"
    case "${FORKLIFT_RECIPE:-}" in
        docker-ce | docker-ce-packaging | moby) ;;
        *) fatal "FORKLIFT_RECIPE must be docker-ce, docker-ce-packaging or moby (got '${FORKLIFT_RECIPE:-}')" ;;
    esac
    [ -n "${FORKLIFT_REPO:-}" ] || fatal "FORKLIFT_REPO is not set"
    [ -n "${FORKLIFT_REF:-}" ] || fatal "FORKLIFT_REF is not set"
    [ "$(id -u)" = 0 ] || fatal "must run as root (the build drives Docker)"
}

unit_name() { echo "forklift-build-${FORKLIFT_BUILD_KEY:0:16}"; }

# Prints the finished result of this key if its artifact is still intact (linked again under
# artifacts/ where a prune removed that link).
reuse_result() {
    local dir=$1 out sha
    [ -f "$dir/result.json" ] || return 1
    sha=$(sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p' "$dir/result.json")
    out=$(find "$dir/out" -maxdepth 1 -name 'docker-*.tgz' 2>/dev/null | head -n 1)
    [ -n "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$sha" ] || return 1
    [ "$(link_artifact "$out" "$sha")" = "$(sed -n 's/.*"artifact":"\([^"]*\)".*/\1/p' "$dir/result.json")" ] || return 1
    # a reused build counts as new for pruning, which keeps the most recent
    touch "$dir/result.json"
    cat "$dir/result.json"
}

build_running() {
    local dir=$1 pid
    if [ -d /run/systemd/system ]; then
        systemctl is-active --quiet "$(unit_name)"
    else
        pid=$(cat "$dir/build.pid" 2>/dev/null) || return 1
        kill -0 "$pid" 2>/dev/null
    fi
}

# Starts `run` detached from this SSH session.
start_build() {
    local dir=$1 var
    rm -f "$dir/failed" "$dir/result.json" "$dir/phase"
    : >"$dir/build.env"
    for var in $ENV_VARS; do
        printf '%s=%q\n' "$var" "${!var:-}" >>"$dir/build.env"
    done
    install -m 0755 "${BASH_SOURCE[0]}" "$dir/build-fork.sh"
    : >"$dir/build.log"
    if [ -d /run/systemd/system ]; then
        systemctl reset-failed "$(unit_name)" >/dev/null 2>&1 || true
        systemd-run --quiet --unit="$(unit_name)" --collect \
            --property=KillMode=control-group --property=TimeoutStopSec=30 \
            /bin/bash "$dir/build-fork.sh" run "$dir"
    else
        setsid /bin/bash "$dir/build-fork.sh" run "$dir" </dev/null >/dev/null 2>&1 8>&- &
        echo $! >"$dir/build.pid"
    fi
    info "started build $(unit_name) (log: $dir/build.log)"
}

# Seconds between two progress lines while a build runs: often enough that a build of minutes
# does not look hung, few enough for the output (and the state, which keeps it).
readonly PROGRESS_EVERY=${FORKLIFT_BUILD_PROGRESS:-10}

# Waits for result.json or failed, showing every PROGRESS_EVERY seconds the build's phase and the
# latest line of its log, when they changed.
wait_build() {
    local dir=$1 deadline next_note started=$SECONDS note last=""
    deadline=$((SECONDS + BUILD_TIMEOUT))
    next_note=$((SECONDS + PROGRESS_EVERY))
    while [ ! -f "$dir/result.json" ] && [ ! -f "$dir/failed" ]; do
        if ! build_running "$dir"; then
            sleep 1
            [ -f "$dir/result.json" ] || [ -f "$dir/failed" ] || echo "the build process ended without a result" >"$dir/failed"
            break
        fi
        [ "$SECONDS" -lt "$deadline" ] || fatal "build did not finish within ${BUILD_TIMEOUT}s; it goes on in $(unit_name)"
        if [ "$SECONDS" -ge "$next_note" ]; then
            note="$(cat "$dir/phase" 2>/dev/null || echo starting): $(tail -n 1 "$dir/build.log" | tr -d '\r' | cut -c1-120)"
            if [ "$note" != "$last" ]; then
                info "$(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s $note"
                last=$note
            fi
            next_note=$((SECONDS + PROGRESS_EVERY))
        fi
        sleep 1
    done
    if [ -f "$dir/failed" ]; then
        {
            echo "build $(unit_name) failed: $(cat "$dir/failed")"
            echo "last lines of $dir/build.log:"
            tail -n 40 "$dir/build.log" | sed 's/^/    /'
        } >&2
        exit 1
    fi
    cat "$dir/result.json"
}

# Holds the build root's lock (fd 8) until it is closed: stacks may share a build host, and of two
# runs with one build key only one may start the build; pruning must not remove a build that a
# run is about to reuse.
lock_build_root() {
    mkdir -p "$BUILD_ROOT"
    exec 8>>"$BUILD_ROOT/.lock"
    flock -w 900 8 || fatal "another forklift build run has held $BUILD_ROOT/.lock for 15 minutes"
}

do_build() {
    check_inputs
    local dir="$BUILD_ROOT/$FORKLIFT_BUILD_KEY"
    lock_build_root
    mkdir -p "$dir"
    if reuse_result "$dir"; then
        info "reusing the finished build $FORKLIFT_BUILD_KEY"
        return 0
    fi
    if build_running "$dir"; then
        info "joining the running build $(unit_name)"
    else
        start_build "$dir"
    fi
    # until this run has its result and has pruned, pruning by a run of another key must leave
    # the build alone
    exec 6<"$dir"
    flock -s 6
    # the build is under way: others may join it while this run waits
    exec 8>&-
    wait_build "$dir"
    # (the result is printed: nothing here may fail the run)
    prune_builds "$dir" || echo "could not remove old builds under $BUILD_ROOT" >&2
    exec 6<&- 8>&-
}

# ---- run: the detached build ----

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# Records what the build is doing, for the progress lines of the runs waiting for it.
phase() { echo "$*" >"$RUN_DIR/phase"; }

# Mirrors REPO under the build root (kept between builds) and checks out REF into DEST.
checkout() {
    local repo=$1 ref=$2 dest=$3 mirror
    phase "fetching $repo"
    mirror="$BUILD_ROOT/mirrors/$(printf '%s' "$repo" | sha256sum | cut -c1-16).git"
    # builds of other keys from the same repository share the mirror: one git at a time in it (the
    # lock goes with the subshell this runs in)
    mkdir -p "$BUILD_ROOT/mirrors"
    exec 7>>"$mirror.lock"
    flock -w 1800 7
    if [ -d "$mirror" ]; then
        git -C "$mirror" remote update --prune >&2
    else
        rm -rf "$mirror.tmp"
        git clone --mirror "$repo" "$mirror.tmp" >&2
        mv "$mirror.tmp" "$mirror"
    fi
    local commit
    if ! commit=$(git -C "$mirror" rev-parse --verify --quiet "$ref^{commit}"); then
        echo "ref '$ref' not found in $repo" >"$RUN_DIR/failed.reason"
        return 1
    fi
    rm -rf "$dest"
    git clone --quiet --shared --no-checkout "$mirror" "$dest" >&2
    git -C "$dest" -c advice.detachedHead=false checkout --quiet "$commit" >&2
    echo "$commit"
}

# The committer time of the commit checked out in DIR: the build's SOURCE_DATE_EPOCH.
commit_time() {
    git -C "$1" log -1 --format=%ct HEAD
}

# Declares SOURCE_DATE_EPOCH in the `build` stage of the Dockerfile in DIR (in this checkout
# only). buildx (0.10 and later) passes SOURCE_DATE_EPOCH from its environment as a build
# argument, but a stage sees a build argument only where it declares it, and neither moby's nor
# docker/cli's build stage does: their build time then comes from the clock. With it declared,
# moby's hack/make.sh (17.09 and later) and docker/cli's scripts/build/.variables (23.0 and
# later) derive it from SOURCE_DATE_EPOCH. A Dockerfile without such a stage is left as it is.
declare_source_date_epoch() {
    local file=$1/Dockerfile
    [ -f "$file" ] || return 0
    if awk 'tolower($0) ~ /^from[ \t].*[ \t]as[ \t]+build[ \t]*$/ {s = 1; next} tolower($0) ~ /^from[ \t]/ {s = 0} s && $0 ~ /^ARG[ \t]+SOURCE_DATE_EPOCH([ \t=]|$)/ {f = 1} END {exit !f}' "$file"; then
        return 0
    fi
    if ! grep -qiE '^from[[:space:]].*[[:space:]]as[[:space:]]+build[[:space:]]*$' "$file"; then
        echo "note: $file has no build stage; its build time is not pinned"
        return 0
    fi
    awk '{print} !done && tolower($0) ~ /^from[ \t].*[ \t]as[ \t]+build[ \t]*$/ {print "ARG SOURCE_DATE_EPOCH"; done = 1}' "$file" >"$file.forklift"
    mv -f "$file.forklift" "$file"
    echo "declared SOURCE_DATE_EPOCH in the build stage of $file"
}

make_vars() {
    [ -n "${FORKLIFT_MAKE_VARS_B64:-}" ] || return 0
    printf '%s' "$FORKLIFT_MAKE_VARS_B64" | base64 -d
}

require_docker() {
    docker info >/dev/null 2>&1 || { echo "no running Docker engine on the build host (the recipes build in containers)" >"$RUN_DIR/failed.reason"; return 1; }
    if [ "$1" = buildx ] && ! docker buildx version >/dev/null 2>&1; then
        echo "recipe $FORKLIFT_RECIPE needs docker buildx on the build host, and it is missing" >"$RUN_DIR/failed.reason"
        return 1
    fi
}

# Each recipe leaves a docker-<version>.tgz path in BUILT_TGZ (or a bundle dir in BUILT_DIR), the
# commits it built in COMMIT (CLI_COMMIT, PACKAGING_COMMIT), and runs make with SOURCE_DATE_EPOCH.
recipe_docker_ce() {
    require_docker plain
    COMMIT=$(checkout "$FORKLIFT_REPO" "$FORKLIFT_REF" "$RUN_DIR/src")
    SOURCE_DATE_EPOCH=$(commit_time "$RUN_DIR/src")
    export SOURCE_DATE_EPOCH
    local -a vars=()
    mapfile -t vars < <(make_vars)
    phase "make static"
    make -C "$RUN_DIR/src" static DOCKER_BUILD_PKGS=static-linux ${FORKLIFT_VERSION:+VERSION="$FORKLIFT_VERSION"} "${vars[@]}"
    BUILT_TGZ=$(newest "$RUN_DIR/src/components/packaging/static/build/linux" 'docker-[0-9]*.tgz')
}

recipe_docker_ce_packaging() {
    require_docker buildx
    PACKAGING_COMMIT=$(checkout "$FORKLIFT_PACKAGING_REPO" "$FORKLIFT_PACKAGING_REF" "$RUN_DIR/src")
    local -a vars=() repos=(DOCKER_ENGINE_REPO="$FORKLIFT_REPO" DOCKER_ENGINE_REF="$FORKLIFT_REF"
        ${FORKLIFT_CLI_REPO:+DOCKER_CLI_REPO="$FORKLIFT_CLI_REPO"} ${FORKLIFT_CLI_REF:+DOCKER_CLI_REF="$FORKLIFT_CLI_REF"})
    mapfile -t vars < <(make_vars)
    local engine="$RUN_DIR/src/src/github.com/docker/docker" cli="$RUN_DIR/src/src/github.com/docker/cli"
    if grep -q '^checkout:' "$RUN_DIR/src/Makefile"; then
        # the engine and the cli first (`make static` checks them out again: the same commits, the
        # declarations below kept), for their commits, the time and the declarations
        phase "make checkout"
        make -C "$RUN_DIR/src" checkout "${repos[@]}" "${vars[@]}"
        [ -d "$engine/.git" ] || { echo "make checkout left no engine checkout at src/github.com/docker/docker" >"$RUN_DIR/failed.reason"; return 1; }
        SOURCE_DATE_EPOCH=$(commit_time "$engine")
        declare_source_date_epoch "$engine"
        declare_source_date_epoch "$cli"
    else
        # (a docker-ce-packaging older than its checkout target: the time of its own commit)
        SOURCE_DATE_EPOCH=$(commit_time "$RUN_DIR/src")
    fi
    export SOURCE_DATE_EPOCH
    phase "make static"
    make -C "$RUN_DIR/src" static DOCKER_BUILD_PKGS=static-linux "${repos[@]}" \
        ${FORKLIFT_VERSION:+VERSION="$FORKLIFT_VERSION"} "${vars[@]}"
    COMMIT=$(git -C "$engine" rev-parse HEAD)
    [ ! -d "$cli/.git" ] || CLI_COMMIT=$(git -C "$cli" rev-parse HEAD)
    BUILT_TGZ=$(newest "$RUN_DIR/src/static/build/linux" 'docker-[0-9]*.tgz')
}

recipe_moby() {
    require_docker buildx
    COMMIT=$(checkout "$FORKLIFT_REPO" "$FORKLIFT_REF" "$RUN_DIR/src")
    SOURCE_DATE_EPOCH=$(commit_time "$RUN_DIR/src")
    export SOURCE_DATE_EPOCH
    declare_source_date_epoch "$RUN_DIR/src"
    local -a vars=()
    mapfile -t vars < <(make_vars)
    phase "make binary"
    make -C "$RUN_DIR/src" binary ${FORKLIFT_VERSION:+VERSION="$FORKLIFT_VERSION"} "${vars[@]}"
    local bundle
    for bundle in bundles/binary-daemon bundles/binary; do
        if [ -x "$RUN_DIR/src/$bundle/dockerd" ]; then BUILT_DIR="$RUN_DIR/src/$bundle"; fi
    done
    [ -n "${BUILT_DIR:-}" ] || { echo "make binary produced no dockerd under bundles/" >"$RUN_DIR/failed.reason"; return 1; }
}

newest() {
    local found
    found=$(find "$1" -maxdepth 1 -name "$2" -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
    [ -n "$found" ] || { echo "the build produced no $2 under $1" >"$RUN_DIR/failed.reason"; return 1; }
    echo "$found"
}

# The Go version the recipe's files name (the packaging's GO_VERSION, else the engine Dockerfile's
# GO_VERSION argument or golang base image), "" when none does.
recipe_go_version() {
    local f v
    for f in "$RUN_DIR/src/common.mk" "$RUN_DIR/src/src/github.com/docker/docker/Dockerfile" "$RUN_DIR/src/Dockerfile" "$RUN_DIR/src/components/engine/Dockerfile"; do
        [ -f "$f" ] || continue
        v=$(sed -n -e 's/^GO_VERSION[[:space:]]*[:?]*=[[:space:]]*\([0-9][0-9.a-z]*\).*/\1/p' -e 's/^ARG GO_VERSION=\([0-9][0-9.a-z]*\).*/\1/p' \
            -e 's/^FROM golang:\([0-9][0-9.a-z]*\).*/\1/p' "$f" | head -n 1)
        if [ -n "$v" ]; then
            echo "$v"
            return 0
        fi
    done
}

# What the build was made of, as the lines of docker/FORKLIFT-BUILD-INFO: the fork's inputs only
# (nothing of forklift's own, the build host or the clock), so that the same inputs give the same
# bytes.
build_info() {
    echo "recipe=$FORKLIFT_RECIPE"
    echo "repo=$FORKLIFT_REPO"
    echo "ref=$FORKLIFT_REF"
    echo "commit=$COMMIT"
    echo "cliCommit=${CLI_COMMIT:-}"
    if [ "$FORKLIFT_RECIPE" = docker-ce-packaging ]; then
        echo "cliRepo=${FORKLIFT_CLI_REPO:-}"
        echo "cliRef=${FORKLIFT_CLI_REF:-}"
        echo "packagingRepo=$FORKLIFT_PACKAGING_REPO"
        echo "packagingRef=$FORKLIFT_PACKAGING_REF"
        echo "packagingCommit=${PACKAGING_COMMIT:-}"
    fi
    echo "version=$1"
    echo "sourceDateEpoch=$SOURCE_DATE_EPOCH"
    make_vars | sed 's/^/makeVar=/'
}

# The build's provenance as one JSON object: BUILD-INFO's inputs, and the toolchain the build host
# used (which may differ from one build host to another: it stays out of the artifact).
provenance_json() {
    local docker buildx line key value fields=""
    docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)
    buildx=$(docker buildx version 2>/dev/null | awk 'NR == 1 {print $2}' || true)
    while IFS= read -r line; do
        key=${line%%=*}
        value=${line#*=}
        case "$key" in
            makeVar) continue ;;
            sourceDateEpoch) fields+="\"$key\":$value," ;;
            *) fields+="\"$key\":$(json_str "$value")," ;;
        esac
    done < <(build_info "$1")
    local make_json="" name
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        name=${line%%=*}
        make_json+="$(json_str "$name"):$(json_str "${line#*=}"),"
    done < <(make_vars)
    printf '{%s"makeVars":{%s},"toolchain":{"go":%s,"docker":%s,"buildx":%s}}' "$fields" "${make_json%,}" \
        "$(json_str "$(recipe_go_version)")" "$(json_str "$docker")" "$(json_str "$buildx")"
}

# Repacks the build into out/docker-<version>.tgz with a record of what was built, reproducibly,
# and links it as artifacts/<sha256>.tgz.
package_artifact() {
    local pack="$RUN_DIR/pack" version=${FORKLIFT_VERSION:-}
    phase "packing the artifact"
    rm -rf "$pack" "$RUN_DIR/out"
    mkdir -p "$pack/docker" "$RUN_DIR/out"
    if [ -n "${BUILT_TGZ:-}" ]; then
        tar -xzf "$BUILT_TGZ" -C "$pack"
        [ -n "$version" ] || version=$(basename "$BUILT_TGZ" .tgz | sed 's/^docker-//')
    else
        find "$BUILT_DIR" -maxdepth 1 -type f -perm -u+x ! -name '*.md5' ! -name '*.sha256' -exec cp -t "$pack/docker" {} +
        [ -n "$version" ] || version=$("$pack/docker/dockerd" --version | sed -n 's/^Docker version \([^,]*\),.*/\1/p')
    fi
    [ -x "$pack/docker/dockerd" ] || { echo "the build output has no docker/dockerd" >"$RUN_DIR/failed.reason"; return 1; }
    [ -n "$version" ] || version="0.0.0-${COMMIT:0:12}"
    build_info "$version" >"$pack/docker/FORKLIFT-BUILD-INFO"
    local out="$RUN_DIR/out/docker-$version.tgz" binaries
    # names, order, owners, modes and times fixed (the commit's time); gzip without a name or time
    tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
        -C "$pack" -cf - docker | gzip -n >"$out"
    # the executables only: what the hosts link (notes such as FORKLIFT-BUILD-INFO are not binaries)
    binaries=$(find "$pack/docker" -maxdepth 1 -type f -perm -u+x -printf '%f\n' | LC_ALL=C sort | sed 's/.*/"&"/' | paste -sd, -)
    rm -rf "$pack"
    local sha size artifact
    sha=$(sha256sum "$out" | cut -d' ' -f1)
    size=$(stat -c %s "$out")
    artifact=$(link_artifact "$out" "$sha")
    printf '{"artifact":%s,"sha256":"%s","size":%s,"version":%s,"commit":"%s","cliCommit":"%s","binaries":[%s],"recipe":"%s","buildKey":"%s","provenance":%s}\n' \
        "$(json_str "$artifact")" "$sha" "$size" "$(json_str "$version")" "$COMMIT" "${CLI_COMMIT:-}" "$binaries" \
        "$FORKLIFT_RECIPE" "$FORKLIFT_BUILD_KEY" "$(provenance_json "$version")" >"$RUN_DIR/result.json.tmp"
    mv -f "$RUN_DIR/result.json.tmp" "$RUN_DIR/result.json"
}

# Links the tgz OUT as artifacts/<SHA>.tgz under the build root and prints that path: the same for
# every build of the same bytes, so a rebuild that gives them changes no fleet host's install.
link_artifact() {
    local out=$1 sha=$2 link="$BUILD_ROOT/artifacts/$2.tgz"
    mkdir -p "$BUILD_ROOT/artifacts"
    ln -f "$out" "$link.$$"
    mv -f "$link.$$" "$link"
    echo "$link"
}

# Records the failure for the waiting `build` (reason file, else the failing step's exit code).
on_run_error() {
    local rc=$?
    # the trap also fires inside $(...) (errtrace); the innermost, first report wins
    [ ! -f "$RUN_DIR/failed" ] || return 0
    if [ -f "$RUN_DIR/failed.reason" ]; then mv -f "$RUN_DIR/failed.reason" "$RUN_DIR/failed"; else echo "exit code $rc" >"$RUN_DIR/failed"; fi
}

do_run() {
    RUN_DIR=$1
    # shellcheck source=/dev/null # written by start_build
    . "$RUN_DIR/build.env"
    exec >>"$RUN_DIR/build.log" 2>&1
    trap on_run_error ERR
    set -E
    echo "forklift build ${FORKLIFT_BUILD_KEY} ($FORKLIFT_RECIPE ${FORKLIFT_REPO}@${FORKLIFT_REF}) started $(date -u +%FT%TZ)"
    COMMIT="" CLI_COMMIT="" PACKAGING_COMMIT="" BUILT_TGZ="" BUILT_DIR="" SOURCE_DATE_EPOCH=""
    case "$FORKLIFT_RECIPE" in
        docker-ce) recipe_docker_ce ;;
        docker-ce-packaging) recipe_docker_ce_packaging ;;
        moby) recipe_moby ;;
    esac
    package_artifact
    echo "forklift build finished $(date -u +%FT%TZ): $(cat "$RUN_DIR/result.json")"
}

# Removes the finished builds under the build root but the BUILD_KEEP most recent (KEEP, the one
# this run just got, among them), and failed ones. It runs in the waiting run, not in the build:
# a build that is still running, or whose run has not pruned yet (its shared lock on the
# directory, held until its own prune is done), stays; so the last of several runs at once finds
# every other build unlocked and leaves exactly BUILD_KEEP. (A run whose lock was dropped before
# its prune could find its own build removed by another run's prune, and then keep one too few.)
# A build made or reused less than BUILD_FRESH seconds ago stays too: another stack's check is
# about to fetch it (its build command has returned, its check has not run yet).
prune_builds() {
    local keep=$1 dir kept=0 fresh_since
    lock_build_root
    fresh_since=$(($(date +%s) - BUILD_FRESH))
    # newest first, by when their result (or failure) was written, or the build was last reused
    while read -r dir; do
        [ "$dir" != "$keep" ] || continue
        if [ -f "$dir/result.json" ] && [ "$kept" -lt $((BUILD_KEEP - 1)) ]; then
            kept=$((kept + 1))
            continue
        fi
        if [ -f "$dir/result.json" ] && [ "$(stat -c %Y "$dir/result.json")" -gt "$fresh_since" ]; then
            continue
        fi
        FORKLIFT_BUILD_KEY=${dir##*/} build_running "$dir" && continue
        exec 5<"$dir"
        if flock -n -x 5; then
            rm -rf "$dir"
            info "removed the old build ${dir##*/}"
        fi
        exec 5<&-
    done < <(find "$BUILD_ROOT" -mindepth 2 -maxdepth 2 \( -name result.json -o -name failed \) -printf '%T@ %h\n' | sort -rn | cut -d' ' -f2- | awk '!seen[$0]++')
    # an artifact's link that no kept build holds any more (its only link left)
    find "$BUILD_ROOT/artifacts" -maxdepth 1 -name '*.tgz' -links 1 -delete 2>/dev/null || true
    # the own directory's lock goes before the root's: the next run to prune may remove it
    exec 6<&-
}

main() {
    case "${1:-}" in
        build) do_build ;;
        run) do_run "${2:?run needs the build directory}" ;;
        *) fatal "usage: $0 build" ;;
    esac
}

main "$@"
